"""Identity as an attacker tries it: password changes, application credentials, tokens that should have died,
the cloud-admin bit, cross-domain names, password guessing, user enumeration, a stolen database, file modes."""

from __future__ import annotations

import os
import stat
from datetime import timedelta

import jwt
import pytest
from conftest import ADMIN_PASSWORD

from nimbus_api import security
from nimbus_api.db import make_engine, migrate, private_dirs
from nimbus_api.models import ApplicationCredential, SigningKey, User, now
from nimbus_api.sealing import secret_key, unseal
from nimbus_api.settings import Settings

PASSWORD = "password-123"


def login(cloud, user, password=PASSWORD, project=None, domain=None, project_domain=None):
    body = {"auth": {"password": {"user": user, "password": password}}}
    if domain:
        body["auth"]["password"]["domain"] = domain
    if project:
        body["project"] = project
    if project_domain:
        body["project_domain"] = project_domain
    return cloud.call("POST", "/v1/auth/tokens", json=body)


def app_credential(cloud, token, user_id, project_id, name="ci", **extra):
    r = cloud.call("POST", "/v1/users/%s/application_credentials" % user_id, token,
                   json=dict({"name": name, "project_id": project_id}, **extra))
    assert r.status_code == 201, r.text
    return r.json()


def app_token(cloud, cred):
    return cloud.call("POST", "/v1/auth/tokens", json={
        "auth": {"application_credential": {"id": cred["id"], "secret": cred["secret"]}}})


def alive(cloud, token):
    return cloud.call("GET", "/v1/auth/tokens", token).status_code == 200


@pytest.fixture
def bob(cloud):
    """A member of project demo, logged in there."""
    project = cloud.project("demo")
    user_id = cloud.user("bob", roles=[(project, "member")])
    return project, user_id, cloud.token("bob", PASSWORD, "demo")


# --- password change ------------------------------------------------------------

def test_changing_ones_own_password_needs_the_original(cloud, app, bob):
    project, user_id, token = bob
    path = "/v1/users/%s" % user_id
    assert cloud.call("PATCH", path, token, json={"password": "stolen-session-1"}).status_code == 400
    wrong = cloud.call("PATCH", path, token, json={"password": "stolen-session-1", "original_password": "guess-1234"})
    assert wrong.status_code == 401
    with app.state.sessions() as db:
        assert db.get(User, user_id).failed_logins == 1  # a wrong original is a failed login
    assert login(cloud, "bob", "stolen-session-1").status_code == 401
    ok = cloud.call("PATCH", path, token, json={"password": "new-password-1", "original_password": PASSWORD})
    assert ok.status_code == 200
    assert login(cloud, "bob", "new-password-1").status_code == 201


def test_the_cloud_admin_resets_another_users_password_without_the_original(cloud, bob):
    project, user_id, token = bob
    r = cloud.call("PATCH", "/v1/users/%s" % user_id, cloud.admin, json={"password": "reset-by-admin-1"})
    assert r.status_code == 200
    assert not alive(cloud, token)
    assert login(cloud, "bob", "reset-by-admin-1").status_code == 201
    # The admin's own password is still theirs to prove.
    admin_id = cloud.call("GET", "/v1/auth/tokens", cloud.admin).json()["user_id"]
    assert cloud.call("PATCH", "/v1/users/%s" % admin_id, cloud.admin,
                      json={"password": "admin-new-pass-1"}).status_code == 400


def test_an_application_credential_token_cannot_change_the_password_unless_unrestricted(cloud, bob):
    project, user_id, token = bob
    body = {"password": "taken-over-123", "original_password": PASSWORD}
    restricted = app_token(cloud, app_credential(cloud, token, user_id, project)).json()["token"]
    assert cloud.call("PATCH", "/v1/users/%s" % user_id, restricted, json=body).status_code == 403
    assert login(cloud, "bob").status_code == 201
    free = app_token(cloud, app_credential(cloud, token, user_id, project, "free", unrestricted=True)).json()["token"]
    assert cloud.call("PATCH", "/v1/users/%s" % user_id, free, json=dict(body, original_password="nope-nope")
                      ).status_code == 401
    assert cloud.call("PATCH", "/v1/users/%s" % user_id, free, json=body).status_code == 200


# --- application credentials -----------------------------------------------------

def test_a_restricted_application_credential_cannot_make_or_delete_credentials(cloud, bob):
    project, user_id, token = bob
    cred = app_credential(cloud, token, user_id, project)
    assert cred["unrestricted"] is False and cred["role"] == "member"
    via = app_token(cloud, cred).json()["token"]
    r = cloud.call("POST", "/v1/users/%s/application_credentials" % user_id, via,
                   json={"name": "child", "project_id": project})
    assert r.status_code == 403
    assert cloud.call("DELETE", "/v1/users/%s/application_credentials/%s" % (user_id, cred["id"]),
                      via).status_code == 403
    free = app_token(cloud, app_credential(cloud, token, user_id, project, "free", unrestricted=True)).json()["token"]
    r = cloud.call("POST", "/v1/users/%s/application_credentials" % user_id, free,
                   json={"name": "child", "project_id": project})
    assert r.status_code == 201


def test_an_application_credential_carries_at_most_its_role(cloud, bob):
    project, user_id, token = bob
    cred = app_credential(cloud, token, user_id, project, "ro", role="reader")
    issued = app_token(cloud, cred).json()
    assert issued["role"] == "reader" and issued["is_admin"] is False
    claims = jwt.decode(issued["token"], options={"verify_signature": False})
    assert claims["app_cred"] == cred["id"] and claims["roles"] == ["reader"]
    reader = issued["token"]
    assert cloud.call("GET", "/v1/projects/%s" % project, reader).status_code == 200
    # A member route: the reader credential is stopped by the policy, the member's token gets past it.
    cancel = "/v1/projects/%s/jobs/%s/cancel" % (project, "0" * 32)
    assert cloud.call("POST", cancel, reader).status_code == 403
    assert cloud.call("POST", cancel, token).status_code == 404
    # Not above the user's own role.
    r = cloud.call("POST", "/v1/users/%s/application_credentials" % user_id, token,
                   json={"name": "up", "project_id": project, "role": "admin"})
    assert r.status_code == 403


def test_an_application_credential_follows_the_users_current_role(cloud, bob):
    project, user_id, token = bob
    cred = app_credential(cloud, token, user_id, project)
    assert app_token(cloud, cred).json()["role"] == "member"
    roles = "/v1/projects/%s/users/%s/roles/" % (project, user_id)
    assert cloud.call("PUT", roles + "reader", cloud.admin).status_code == 204
    assert cloud.call("DELETE", roles + "member", cloud.admin).status_code == 204
    assert app_token(cloud, cred).json()["role"] == "reader"
    assert cloud.call("DELETE", roles + "reader", cloud.admin).status_code == 204
    assert app_token(cloud, cred).status_code == 403


def test_no_cloud_admin_through_an_application_credential(cloud):
    admin_id = cloud.call("GET", "/v1/auth/tokens", cloud.admin).json()["user_id"]
    admin_project = cloud.call("GET", "/v1/auth/tokens", cloud.admin).json()["project_id"]
    cred = app_credential(cloud, cloud.admin, admin_id, admin_project, unrestricted=True)
    issued = app_token(cloud, cred).json()
    assert issued["role"] == "admin" and issued["is_admin"] is False
    assert cloud.call("GET", "/v1/users", issued["token"]).status_code == 403


def test_deleting_or_expiring_an_application_credential_ends_its_tokens(cloud, app, bob):
    project, user_id, token = bob
    gone = app_credential(cloud, token, user_id, project, "gone")
    via_gone = app_token(cloud, gone).json()["token"]
    old = app_credential(cloud, token, user_id, project, "old")
    via_old = app_token(cloud, old).json()["token"]
    assert alive(cloud, via_gone) and alive(cloud, via_old)
    assert cloud.call("DELETE", "/v1/users/%s/application_credentials/%s" % (user_id, gone["id"]),
                      token).status_code == 204
    assert cloud.call("GET", "/v1/projects/%s" % project, via_gone).status_code == 401
    with app.state.sessions() as db:
        db.get(ApplicationCredential, old["id"]).expires_at = now() - timedelta(seconds=1)
        db.commit()
    assert cloud.call("GET", "/v1/projects/%s" % project, via_old).status_code == 401
    assert app_token(cloud, old).status_code == 401


# --- tokens end with what they stand on -------------------------------------------

def test_disabling_or_deleting_the_user_ends_its_tokens(cloud, bob):
    project, user_id, token = bob
    cred_token = app_token(cloud, app_credential(cloud, token, user_id, project)).json()["token"]
    assert cloud.call("PATCH", "/v1/users/%s" % user_id, cloud.admin, json={"enabled": False}).status_code == 200
    assert not alive(cloud, token) and not alive(cloud, cred_token)
    assert login(cloud, "bob").status_code == 401
    assert cloud.call("PATCH", "/v1/users/%s" % user_id, cloud.admin, json={"enabled": True}).status_code == 200
    fresh = cloud.token("bob", PASSWORD, "demo")
    assert cloud.call("DELETE", "/v1/users/%s" % user_id, cloud.admin).status_code == 204
    assert not alive(cloud, fresh)


def test_disabling_or_deleting_a_project_ends_the_tokens_scoped_to_it(cloud, bob):
    """CVE-2013-4222: tokens outlived their disabled project."""
    project, user_id, token = bob
    other = cloud.project("other")
    cloud.call("PUT", "/v1/projects/%s/users/%s/roles/member" % (other, user_id), cloud.admin)
    elsewhere = cloud.token("bob", PASSWORD, "other")
    unscoped = cloud.token("bob", PASSWORD)
    assert cloud.call("PATCH", "/v1/projects/%s" % project, cloud.admin, json={"enabled": False}).status_code == 200
    assert cloud.call("GET", "/v1/projects/%s" % project, token).status_code == 401
    assert login(cloud, "bob", project="demo").status_code == 403
    assert alive(cloud, elsewhere) and alive(cloud, unscoped)
    assert cloud.call("DELETE", "/v1/projects/%s" % project, cloud.admin).status_code == 204
    assert not alive(cloud, token)
    assert alive(cloud, elsewhere)


def test_a_disabled_domain_refuses_its_users_and_ends_their_tokens(cloud):
    """CVE-2014-5253: a disabled domain's users kept their tokens."""
    a = cloud.admin
    assert cloud.call("POST", "/v1/domains", a, json={"name": "corp"}).status_code == 201
    corp_project = cloud.call("POST", "/v1/projects", a, json={"name": "web", "domain": "corp"}).json()["id"]
    carol = cloud.call("POST", "/v1/users", a, json={"name": "carol", "domain": "corp", "password": PASSWORD}).json()
    cloud.call("PUT", "/v1/projects/%s/users/%s/roles/member" % (corp_project, carol["id"]), a)
    # A user of the default domain with a role on the corp project.
    dave = cloud.user("dave", roles=[(corp_project, "reader")])
    assert dave
    carols = login(cloud, "carol", domain="corp", project="web").json()["token"]
    carols_unscoped = login(cloud, "carol", domain="corp").json()["token"]
    daves = login(cloud, "dave", project=corp_project).json()["token"]
    assert alive(cloud, carols) and alive(cloud, daves)
    assert cloud.call("PATCH", "/v1/domains/corp", a, json={"enabled": False}).status_code == 200
    refused = login(cloud, "carol", domain="corp")
    assert refused.status_code == 401 and refused.json()["detail"] == "invalid credentials"
    assert not alive(cloud, carols) and not alive(cloud, carols_unscoped)
    assert not alive(cloud, daves)  # scoped to a project of the disabled domain
    assert login(cloud, "dave", project=corp_project).status_code == 403
    assert login(cloud, "dave").status_code == 201


# --- who is the cloud admin, which project a name means --------------------------------

def test_a_project_named_admin_in_another_domain_makes_no_cloud_admin(cloud):
    a = cloud.admin
    cloud.call("POST", "/v1/domains", a, json={"name": "evil"})
    fake = cloud.call("POST", "/v1/projects", a, json={"name": "admin", "domain": "evil"}).json()["id"]
    mallory = cloud.call("POST", "/v1/users", a, json={"name": "mallory", "domain": "evil",
                                                       "password": PASSWORD}).json()["id"]
    assert cloud.call("PUT", "/v1/projects/%s/users/%s/roles/admin" % (fake, mallory), a).status_code == 204
    issued = login(cloud, "mallory", domain="evil", project="admin").json()
    assert issued["project_id"] == fake and issued["role"] == "admin" and issued["is_admin"] is False
    assert cloud.call("GET", "/v1/users", issued["token"]).status_code == 403
    assert cloud.call("GET", "/v1/domains", issued["token"]).status_code == 403
    # The real admin project is the default domain's, whatever else is called "admin".
    real = login(cloud, "admin", ADMIN_PASSWORD, project="admin").json()
    assert real["is_admin"] is True and real["project_id"] != fake


def test_a_project_name_means_the_users_own_domain(cloud):
    a = cloud.admin
    cloud.call("POST", "/v1/domains", a, json={"name": "corp"})
    secret = cloud.call("POST", "/v1/projects", a, json={"name": "secret", "domain": "corp"}).json()["id"]
    home = cloud.project("web")
    twin = cloud.call("POST", "/v1/projects", a, json={"name": "web", "domain": "corp"}).json()["id"]
    alice = cloud.user("alice", roles=[(home, "member"), (secret, "reader")])
    assert alice
    # "secret" exists only in corp: by name from the default domain it is not found.
    assert login(cloud, "alice", project="secret").status_code == 401
    # By id, or with its domain named, it is found (alice holds a role there).
    assert login(cloud, "alice", project=secret).json()["project_id"] == secret
    assert login(cloud, "alice", project="secret", project_domain="corp").json()["project_id"] == secret
    # A namesake in another domain is never picked up by name.
    assert login(cloud, "alice", project="web").json()["project_id"] == home
    assert login(cloud, "alice", project="web", project_domain="corp").status_code == 403
    assert login(cloud, "alice", project=twin).status_code == 403
    assert login(cloud, "alice", project="web", project_domain="nowhere").status_code == 401


# --- lockout --------------------------------------------------------------------

@pytest.fixture
def lockout(app):
    app.state.settings.lockout_failure_attempts = 3
    app.state.settings.lockout_duration = 600
    return app.state.settings


def test_lockout_refuses_even_the_right_password_until_the_admin_unlocks(cloud, app, lockout, bob):
    project, user_id, token = bob
    wrong = [login(cloud, "bob", "guess-%d-xx" % n) for n in range(3)]
    assert {r.status_code for r in wrong} == {401}
    locked = login(cloud, "bob")
    # The same answer as a wrong password: a guesser cannot tell the account is locked.
    assert locked.status_code == 401 and locked.json() == wrong[0].json()
    assert alive(cloud, token)  # a lockout stops logins, not existing sessions
    assert cloud.call("PATCH", "/v1/users/%s" % user_id, cloud.admin, json={"enabled": True}).status_code == 200
    assert login(cloud, "bob").status_code == 201
    # A password reset by the admin unlocks too.
    for n in range(3):
        login(cloud, "bob", "guess-%d-yy" % n)
    assert login(cloud, "bob").status_code == 401
    assert cloud.call("PATCH", "/v1/users/%s" % user_id, cloud.admin, json={"password": "fresh-pass-12"}
                      ).status_code == 200
    assert login(cloud, "bob", "fresh-pass-12").status_code == 201


def test_a_lockout_ends_after_its_duration_and_a_success_resets_the_count(cloud, app, lockout, bob):
    project, user_id, token = bob
    for n in range(3):
        login(cloud, "bob", "guess-%d-xx" % n)
    assert login(cloud, "bob").status_code == 401
    with app.state.sessions() as db:
        db.get(User, user_id).locked_until = now() - timedelta(seconds=1)
        db.commit()
    assert login(cloud, "bob").status_code == 201
    for attempt in range(2):
        login(cloud, "bob", "wrong-password")
        assert login(cloud, "bob").status_code == 201
    with app.state.sessions() as db:
        assert db.get(User, user_id).failed_logins == 0


def test_wrong_original_passwords_lock_the_account_too(cloud, lockout, bob):
    project, user_id, token = bob
    for attempt in range(3):
        r = cloud.call("PATCH", "/v1/users/%s" % user_id, token,
                       json={"password": "new-password-1", "original_password": "guess-guess"})
        assert r.status_code == 401
    assert login(cloud, "bob").status_code == 401


def test_lockout_zero_never_locks(cloud, app, bob):
    app.state.settings.lockout_failure_attempts = 0
    for n in range(6):
        login(cloud, "bob", "guess-%d-zz" % n)
    assert login(cloud, "bob").status_code == 201


def test_bootstrap_unlocks_the_admin(cloud, app, lockout, settings):
    from nimbus_api import identity

    for n in range(3):
        login(cloud, "admin", "guess-%d-aa" % n)
    assert login(cloud, "admin", ADMIN_PASSWORD).status_code == 401
    with app.state.sessions() as db:
        assert identity.bootstrap(db, settings, ADMIN_PASSWORD)[1] is True
    assert login(cloud, "admin", ADMIN_PASSWORD).status_code == 201


# --- equal work for names that do not exist -------------------------------------------

class CountingHasher:
    def __init__(self, hasher):
        self.hasher, self.verified = hasher, 0

    def verify(self, stored, secret):
        self.verified += 1
        return self.hasher.verify(stored, secret)

    def hash(self, secret):
        return self.hasher.hash(secret)


@pytest.fixture
def counting(monkeypatch):
    hasher = CountingHasher(security.HASHER)
    monkeypatch.setattr(security, "HASHER", hasher)
    return hasher


def test_unknown_users_cost_the_same_verification_as_wrong_passwords(cloud, app, bob, counting):
    project, user_id, token = bob
    cred = app_credential(cloud, token, user_id, project)
    cloud.call("POST", "/v1/domains", cloud.admin, json={"name": "off", "enabled": False})
    attempts = {
        "wrong password": lambda: login(cloud, "bob", "wrong-password"),
        "unknown user": lambda: login(cloud, "nobody", "wrong-password"),
        "unknown domain": lambda: login(cloud, "bob", "wrong-password", domain="nowhere"),
        "disabled domain": lambda: login(cloud, "bob", "wrong-password", domain="off"),
        "wrong credential secret": lambda: cloud.call("POST", "/v1/auth/tokens", json={
            "auth": {"application_credential": {"id": cred["id"], "secret": "guess"}}}),
        "unknown credential": lambda: cloud.call("POST", "/v1/auth/tokens", json={
            "auth": {"application_credential": {"id": "0" * 32, "secret": "guess"}}}),
    }
    answers = {}
    for what, attempt in attempts.items():
        before = counting.verified
        r = attempt()
        answers[what] = (r.status_code, r.json()["detail"], counting.verified - before)
    assert set(answers.values()) == {(401, "invalid credentials", 1)}, answers
    # A disabled (and a locked) user: the same work and the same answer.
    cloud.call("PATCH", "/v1/users/%s" % user_id, cloud.admin, json={"enabled": False})
    before = counting.verified
    r = login(cloud, "bob")
    assert (r.status_code, counting.verified - before) == (401, 1)


# --- the database alone forges nothing ------------------------------------------------

def test_the_database_alone_cannot_forge_a_token(cloud, app, settings):
    genuine = cloud.token("admin", ADMIN_PASSWORD, "admin")
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims["jti"] = "f" * 32
    with app.state.sessions() as db:
        row = db.get(SigningKey, header["kid"])
        stored = {c.name: getattr(row, c.name) for c in SigningKey.__table__.columns}
    # An attacker with the row tries every stored value as the HMAC key.
    for value in stored.values():
        if isinstance(value, str):
            forged = jwt.encode(claims, value, algorithm="HS256", headers=header)
            assert cloud.call("GET", "/v1/users", forged).status_code == 401
    # Nor does a guessed sealing key open it.
    with pytest.raises(Exception):
        unseal(Settings(secret_key="a-guess-at-the-key", state_dir=settings.state_dir), stored["sealed"])
    # With the service's secret key (which is not in the database) the same forgery works: the test is sound.
    real = unseal(settings, stored["sealed"])["secret"]
    assert real not in str(stored.values())
    forged = jwt.encode(claims, real, algorithm="HS256", headers=header)
    assert cloud.call("GET", "/v1/users", forged).status_code == 200


def test_a_changed_secret_key_ends_old_tokens_and_signs_anew(cloud, app):
    old = cloud.token("admin", ADMIN_PASSWORD, "admin")
    app.state.settings.secret_key = "another-secret-key-altogether"
    r = cloud.call("GET", "/v1/users", old)
    assert r.status_code == 401 and "another secret key" in r.json()["detail"]
    new = cloud.token("admin", ADMIN_PASSWORD, "admin")
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    assert cloud.call("GET", "/v1/users", new).status_code == 200


# --- file modes -------------------------------------------------------------------

def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_state_files_are_owner_only_whatever_the_umask(tmp_path, umask):
    root = tmp_path / "root"
    settings = Settings(database_url="sqlite:///%s" % (root / "db" / "nimbus.db"), state_dir=root / "state",
                        data_dir=root / "state" / "jobs")
    old = os.umask(umask)
    try:
        migrate(settings.database_url)
        engine = make_engine(settings.database_url)
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
            conn.commit()
            files = [root / "db" / name for name in ("nimbus.db", "nimbus.db-wal", "nimbus.db-shm")]
            assert all(f.exists() for f in files)
            assert [mode(f) for f in files] == [0o600] * 3
        engine.dispose()
        secret_key(settings)
        private_dirs(settings)
    finally:
        os.umask(old)
    assert mode(root / "state" / "secret.key") == 0o600
    assert [mode(d) for d in (root, root / "db", root / "state", root / "state" / "jobs")] == [0o700] * 4
    assert [p.name for p in (root / "state").iterdir()] and not list((root / "state").glob(".secret.key.*"))


def test_the_command_line_makes_the_state_directories_owner_only(tmp_path, monkeypatch):
    from nimbus_api import cli

    settings = Settings(database_url="sqlite:///%s" % (tmp_path / "s" / "nimbus.db"), state_dir=tmp_path / "s",
                        data_dir=tmp_path / "jobs")
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    old = os.umask(0)
    try:
        cli.server_main(["migrate"])
    finally:
        os.umask(old)
    assert (mode(tmp_path / "s"), mode(tmp_path / "jobs"), mode(tmp_path / "s" / "nimbus.db")) == (0o700, 0o700, 0o600)
