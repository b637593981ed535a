"""Schemathesis against the service's own OpenAPI document: every operation, with generated valid and
invalid input, as the cloud admin (the caller who reaches the most code). The property: no server error.

Schemathesis reads the schema when the module loads, so this module builds its own service then, in a
temporary directory of its own.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
import tempfile
from pathlib import Path

import pytest
import schemathesis
from conftest import Cloud, PLAYBOOKS, bootstrapped_app, settle, with_views
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings as hypothesis_settings

from nimbus_api.openstack import runbooks
from nimbus_api.settings import Settings

# Operations that would end the session the other cases use; their logic is covered in test_identity.
SESSION_ENDING = {("DELETE", "/v1/auth/tokens"), ("DELETE", "/ui/session"), ("PUT", "/ui/session"),
                  ("POST", "/v1/users/{user_id}/revoke-tokens"), ("POST", "/v1/auth/keys/retire")}

ROOT = Path(tempfile.mkdtemp(prefix="nimbus-openapi-"))
(ROOT / "playbooks").mkdir()
for name, text in PLAYBOOKS.items():
    (ROOT / "playbooks" / name).write_text(text)
SETTINGS = Settings(database_url="sqlite:///%s" % (ROOT / "nimbus.db"), data_dir=ROOT / "jobs",
                    state_dir=ROOT / "state", playbooks_dir=ROOT / "playbooks")
APP = bootstrapped_app(SETTINGS)
# The runbooks' templates, with playbooks that do nothing, so that the OpenStack APIs' changes are queued as
# jobs (without them, a change is answered 503: this cloud has not registered its runbooks).
for spec in runbooks.TEMPLATES.values():
    (ROOT / "playbooks" / spec["playbook"]).write_text("- hosts: all\n  gather_facts: false\n  tasks: []\n")
with APP.state.sessions() as _db:
    runbooks.register(_db, "compute:\n  hosts:\n    hv1:\n      ansible_connection: local\n"
                      "      ansible_python_interpreter: %s\n" % sys.executable, {}, ROOT / "playbooks")
# A storage host with no volumes yet (without one, Cinder's creates are answered 503).
with_views(APP, volumes=list, volume_snapshots=list, volume_backups=list,
           volume_types=lambda: [{"name": "standard", "backend": "file", "format": "raw", "default": True}])
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
STATUSES: Counter = Counter()


@pytest.fixture(scope="module")
def admin_headers():
    with TestClient(APP) as client:
        yield {"Authorization": "Bearer " + Cloud(client).admin}
    settle(APP)
    shutil.rmtree(ROOT, ignore_errors=True)


def test_the_document_covers_every_operation():
    paths = APP.openapi()["paths"]
    assert "/v1/projects/{project_id}/job_templates/{template_id}/launch" in paths
    assert "/v1/projects/{project_id}/resources/{kind}" in paths
    assert sum(len(ops) for ops in paths.values()) > 50


@schema.parametrize()
# Fifteen cases an operation (about 3000 calls in all): past that, more cases mostly repeat the shapes the
# schema allows and cost CPU the container hosts need. A failing case is kept in .hypothesis/ and tried
# first on the next local run.
@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case, admin_headers):
    if (case.method.upper(), case.path) in SESSION_ENDING:
        pytest.skip("ends the session the other cases use")
    response = case.call(headers=admin_headers)
    STATUSES[response.status_code // 100 * 100] += 1
    assert response.status_code < 500, "%s %s -> %s: %s" % (case.method, case.formatted_path,
                                                            response.status_code, response.text[:500])


def test_the_generated_calls_got_past_authentication():
    """Run after the generated cases: most were served as the admin, not refused at the door."""
    assert sum(STATUSES.values()) > 300, STATUSES
    assert STATUSES[200] > 100 and STATUSES[400] > 100 and STATUSES[500] == 0, STATUSES
