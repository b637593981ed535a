"""A fresh service per test: its own SQLite file, migrated, with the cloud admin bootstrapped."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from nimbus_api import identity
from nimbus_api.app import create_app
from nimbus_api.settings import Settings

ADMIN_PASSWORD = "admin-password-9x"


@pytest.fixture
def settings(tmp_path):
    return Settings(database_url="sqlite:///%s" % (tmp_path / "nimbus.db"), data_dir=tmp_path / "jobs")


@pytest.fixture
def app(settings):
    app = create_app(settings)
    with app.state.sessions() as db:
        identity.bootstrap(db, settings, ADMIN_PASSWORD)
    return app


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


class Cloud:
    """Shortcuts for tests: tokens, users, projects."""

    def __init__(self, client):
        self.client = client
        self.admin = self.token("admin", ADMIN_PASSWORD, "admin")

    def token(self, user, password, project=None):
        body = {"auth": {"password": {"user": user, "password": password}}}
        if project:
            body["project"] = project
        r = self.client.post("/v1/auth/tokens", json=body)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def call(self, method, path, token=None, **kw):
        headers = {"Authorization": "Bearer " + token} if token else {}
        return self.client.request(method, path, headers=headers, **kw)

    def project(self, name):
        r = self.call("POST", "/v1/projects", self.admin, json={"name": name})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def user(self, name, password="password-123", roles=()):
        r = self.call("POST", "/v1/users", self.admin, json={"name": name, "password": password})
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        for project_id, role in roles:
            r = self.call("PUT", "/v1/projects/%s/users/%s/roles/%s" % (project_id, user_id, role), self.admin)
            assert r.status_code == 204, r.text
        return user_id


@pytest.fixture
def cloud(client):
    return Cloud(client)
