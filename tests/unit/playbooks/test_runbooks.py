"""The runbooks (the playbooks the API's job templates run) use what the API's workers have: ansible-core's
ansible.builtin and this collection, nothing from other collections (the api role installs only nimbus.cloud
next to ansible-core); and every runbook a template names exists, with its checks of the request first."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOKS = REPO / "playbooks"
RUNBOOK_KINDS = ("server", "network", "subnet", "port", "security", "router", "floating", "compute", "image", "volume",
                 "snapshot", "backup")
RUNBOOKS = sorted(p for p in PLAYBOOKS.glob("*.yml") if p.name.split("_")[0] in RUNBOOK_KINDS)
# Collection names start with a letter: variables of the play's own (__storage.__chap.content) do not.
FQCN = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\b")


def runbook_files():
    return RUNBOOKS + sorted((PLAYBOOKS / "tasks").glob("*.yml"))


def test_there_are_runbooks():
    assert {p.name for p in RUNBOOKS} >= {"server_create.yml", "server_delete.yml", "server_action.yml",
                                          "network_create.yml", "network_delete.yml", "subnet_create.yml",
                                          "subnet_delete.yml", "port_create.yml", "port_delete.yml",
                                          "security_group_create.yml", "security_group_delete.yml",
                                          "router_create.yml", "router_delete.yml", "floating_ip_create.yml",
                                          "floating_ip_delete.yml", "compute_host_add.yml", "image_create.yml",
                                          "image_update.yml", "image_delete.yml", "volume_create.yml",
                                          "volume_attach.yml", "volume_detach.yml", "snapshot_create.yml",
                                          "backup_create.yml"}


@pytest.mark.parametrize("path", runbook_files(), ids=lambda p: p.name)
def test_only_builtin_and_this_collection(path):
    text = path.read_text()
    foreign = sorted({".".join(m) for m in FQCN.findall(text)
                      if m[:2] not in (("ansible", "builtin"), ("nimbus", "cloud")) and not m[2].startswith("yml")})
    # Dotted names that are not collections: addresses and files do not match three lowercase words.
    assert foreign == [], "%s uses %s, which the API's workers do not have" % (path.name, ", ".join(foreign))


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_every_play_checks_the_request_first(path):
    for play in yaml.safe_load(path.read_text()):
        first = play["tasks"][0]
        assert first.get("ansible.builtin.import_tasks", "").startswith("tasks/"), (path.name, play["name"])
        checks = (PLAYBOOKS / first["ansible.builtin.import_tasks"]).read_text()
        # A project's runbook takes the project from nimbus_project; the cloud admin's acts for every project
        # and checks the host it names instead.
        wanted = "compute_host in groups['compute']" if path.name.startswith("compute_") else "nimbus_project is defined"
        assert wanted in checks, (path.name, play["name"])
