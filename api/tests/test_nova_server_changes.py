"""Nova's server changes: each request queues a job of its runbook's template (operations.py), counted against
the project's quotas under the project's lock; the server shows as BUILD, then as the hypervisors show it, or as
ERROR with the job's fault.

The runbooks here are stand-ins with the real ones' names and variables that edit libvirt's test driver file
the instances resource view reads (the real runbooks boot real guests in the network_multinode scenario):
the API's side of the contract is what is under test.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time

import httpx
import pytest
from conftest import Cloud, bootstrapped_app, register_runbooks, settle, with_images
from fastapi.testclient import TestClient

from nimbus_api.models import Job, Operation

C = "/compute/v2.1"

# What the real runbooks do to a hypervisor, done to the test driver's file: a domain line per server.
STANDINS = {
    "server_create.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Wait for the test's go
      ansible.builtin.wait_for:
        path: "{{ standin_gate }}"
        timeout: 60
      when: server_name is match('slow')
    - name: No valid host was found
      ansible.builtin.fail:
        msg: "No valid host was found for {{ server_id }}"
      when: server_name is match('doomed')
    - name: Record what arrived, as data
      ansible.builtin.copy:
        content: "{{ {'name': server_name, 'metadata': server_metadata, 'keys': server_keys | default([]),
                      'user_data': server_user_data | default(none), 'project': nimbus_project,
                      'networks': server_networks | default([]), 'image': server_image} | to_json }}"
        dest: "{{ standin_xml | dirname }}/arrived-{{ server_id }}.json"
        mode: "0600"
    - name: The instance
      ansible.builtin.lineinfile:
        path: "{{ standin_xml }}"
        insertbefore: '^</node>'
        line: >-
          <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0"><name>{{ server_id }}</name>
          <uuid>{{ server_id }}</uuid><metadata>
          <nimbus:instance xmlns:nimbus="https://nimbus.cloud/xmlns/instance/1"><nimbus:project>{{ nimbus_project }}</nimbus:project>
          <nimbus:flavor name="{{ server_flavor.name }}" vcpus="{{ server_flavor.vcpus }}" ram_mb="{{ server_flavor.ram_mb }}"
          disk_gb="{{ server_flavor.disk_gb }}"/><nimbus:image>{{ server_image }}</nimbus:image>
          {% for k, v in server_metadata.items() %}<nimbus:meta key="{{ k | e }}">{{ v | e }}</nimbus:meta>{% endfor %}
          </nimbus:instance></metadata><memory>{{ server_flavor.ram_mb * 1024 }}</memory>
          <vcpu>{{ server_flavor.vcpus }}</vcpu><os><type>hvm</type></os>
          {% if server_name is match('stopped') %}<test:runstate>5</test:runstate>{% endif %}</domain>
""",
    # The server's domain line takes the new flavor.
    "server_resize.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Wait for the test's go
      ansible.builtin.wait_for:
        path: "{{ standin_gate }}"
        timeout: 60
      when: server_flavor.name is match('gated')
    - name: The new flavor
      ansible.builtin.replace:
        path: "{{ standin_xml }}"
        regexp: '(<uuid>{{ server_id }}</uuid>.*)<nimbus:flavor [^>]*/>'
        replace: >-
          \1<nimbus:flavor name="{{ server_flavor.name }}" vcpus="{{ server_flavor.vcpus }}"
          ram_mb="{{ server_flavor.ram_mb }}" disk_gb="{{ server_flavor.disk_gb }}"/>
""",
    "server_delete.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Remove the instance
      ansible.builtin.lineinfile:
        path: "{{ standin_xml }}"
        regexp: "<uuid>{{ server_id }}</uuid>"
        state: absent
""",
    "server_action.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Record the action
      ansible.builtin.lineinfile:
        path: "{{ standin_xml | dirname }}/actions"
        line: "{{ server_id }} {{ server_action }} {{ server_reboot_type | default('') }}"
        create: true
        mode: "0600"
""",
}


@pytest.fixture
def compute(views_settings, hypervisor, tmp_path):
    for name, text in STANDINS.items():
        (views_settings.playbooks_dir / name).write_text(text)
    xml = hypervisor([("old-a", "placeholder")])
    app = bootstrapped_app(views_settings)
    with_images(app)
    with TestClient(app) as client:
        cloud = Cloud(client)
        a, b = cloud.project("proj-a"), cloud.project("proj-b")
        cloud.user("member-a", roles=[(a, "member")])
        cloud.user("reader-a", roles=[(a, "reader")])
        cloud.user("member-b", roles=[(b, "member")])
        register_runbooks(app, standin_xml=str(xml), standin_gate=str(tmp_path / "go"))
        made = client.post(C + "/flavors", headers={"X-Auth-Token": cloud.admin},
                           json={"flavor": {"name": "m1.small", "id": "small", "vcpus": 2, "ram": 512, "disk": 1}})
        assert made.status_code == 200, made.text
        tokens = {n: cloud.token(n, "password-123", p) for n, p in
                  (("member-a", "proj-a"), ("reader-a", "proj-a"), ("member-b", "proj-b"))}
        yield cloud, app, {"a": a, "b": b}, tokens, tmp_path


def call(cloud, method, token, path, status, **kw):
    r = cloud.client.request(method, C + path, headers={"X-Auth-Token": token}, **kw)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def boot(cloud, token, name, status=202, **extra):
    body = {"server": dict({"name": name, "flavorRef": "small", "imageRef": "tiny.qcow2"}, **extra)}
    return call(cloud, "POST", token, "/servers", status, json=body)


def wait_for(cloud, token, server_id, status, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        r = cloud.client.get(C + "/servers/" + server_id, headers={"X-Auth-Token": token})
        got = r.json()["server"]["status"] if r.status_code == 200 else r.status_code
        if got == status or time.monotonic() > deadline:
            assert got == status, r.text
            return r.json() if r.status_code == 200 else None
        time.sleep(0.2)


def test_a_server_is_built_by_its_runbook_and_deleted_by_another(compute):
    cloud, app, p, t, tmp = compute
    user_data = "#cloud-config\n# {{ lookup('pipe', 'id') }}\n"
    made = boot(cloud, t["member-a"], "web {{ 7 * 7 }}", user_data=base64.b64encode(user_data.encode()).decode(),
                metadata={"tier": "{% raw %}front"})["server"]
    server_id = made["id"]
    assert made["links"][0]["href"].endswith("/compute/v2.1/servers/" + server_id)
    shown = wait_for(cloud, t["member-a"], server_id, "ACTIVE")["server"]
    assert (shown["name"], shown["tenant_id"], shown["flavor"]["id"]) == ("web {{ 7 * 7 }}", p["a"], "small")
    assert shown["metadata"] == {"tier": "{% raw %}front"}  # the service's own keys are not the user's metadata
    # The request's values reached the runbook as data: nothing in them was templated.
    arrived = json.loads((tmp / ("arrived-%s.json" % server_id)).read_text())
    assert arrived["name"] == "web {{ 7 * 7 }}" and arrived["user_data"] == user_data
    assert arrived["project"] == p["a"] and arrived["metadata"]["display_name"] == "web {{ 7 * 7 }}"
    # Another project neither sees nor deletes it.
    assert call(cloud, "GET", t["member-b"], "/servers/" + server_id, 404)
    call(cloud, "DELETE", t["member-b"], "/servers/" + server_id, 404)
    # A reader may look, not delete.
    call(cloud, "DELETE", t["reader-a"], "/servers/" + server_id, 403)
    call(cloud, "DELETE", t["member-a"], "/servers/" + server_id, 204)
    wait_for(cloud, t["member-a"], server_id, 404)
    with app.state.sessions() as db:
        ops = [(o.action, db.get(Job, o.job_id).status) for o in db.query(Operation).order_by(Operation.id)]
    assert ops == [("create", "successful"), ("delete", "successful")]


def test_build_then_error_with_the_jobs_fault(compute):
    cloud, app, p, t, tmp = compute
    slow = boot(cloud, t["member-a"], "slow-1")["server"]["id"]
    building = wait_for(cloud, t["member-a"], slow, "BUILD")["server"]
    assert building["OS-EXT-STS:vm_state"] == "building" and building["name"] == "slow-1"
    assert any(s["id"] == slow for s in call(cloud, "GET", t["member-a"], "/servers", 200)["servers"])
    # A server being built cannot be stopped yet.
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % slow, 409, json={"os-stop": None})
    (tmp / "go").write_text("")
    wait_for(cloud, t["member-a"], slow, "ACTIVE")
    doomed = boot(cloud, t["member-a"], "doomed-1")["server"]["id"]
    failed = wait_for(cloud, t["member-a"], doomed, "ERROR")["server"]
    assert "No valid host was found for " + doomed in failed["fault"]["message"]
    assert failed["fault"]["code"] == 500
    # A failed build counts against nothing; deleting it removes it from view and cleans up after it.
    absolute = call(cloud, "GET", t["member-a"], "/limits", 200)["limits"]["absolute"]
    assert (absolute["totalInstancesUsed"], absolute["totalCoresUsed"]) == (1, 2)
    call(cloud, "DELETE", t["member-a"], "/servers/" + doomed, 204)
    wait_for(cloud, t["member-a"], doomed, 404)


def test_actions_need_the_right_state(compute):
    cloud, app, p, t, tmp = compute
    (tmp / "go").write_text("")
    server_id = boot(cloud, t["member-a"], "act")["server"]["id"]
    wait_for(cloud, t["member-a"], server_id, "ACTIVE")
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 409, json={"os-start": None})
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 202, json={"reboot": {"type": "HARD"}})
    settle(app)
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 202, json={"os-stop": None})
    settle(app)
    assert (tmp / "actions").read_text().split("\n")[:2] == [server_id + " reboot hard", server_id + " stop soft"]
    for bad in ({"reboot": {"type": "GENTLE"}}, {"evacuate": {}}, {"os-stop": None, "os-start": None}):
        call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 400, json=bad)
    call(cloud, "POST", t["member-b"], "/servers/%s/action" % server_id, 404, json={"os-stop": None})


def test_bad_requests_queue_nothing(compute):
    cloud, app, p, t, tmp = compute
    a = t["member-a"]
    boot(cloud, a, "x", status=404, flavorRef="nope")
    for image in ("../../etc/passwd", "/etc/shadow", "a b", "", "other.qcow2"):
        boot(cloud, a, "x", status=400, imageRef=image)
    boot(cloud, a, "x", status=400, user_data="not base64!")
    boot(cloud, a, "x", status=400, metadata={"display_name": "spoofed"})
    boot(cloud, a, "x", status=400, networks=[{"uuid": "no-such-net"}])
    boot(cloud, a, "x", status=404, key_name="missing")
    boot(cloud, a, "x", status=400, max_count=5)
    boot(cloud, t["reader-a"], "x", status=403)
    with app.state.sessions() as db:
        assert db.query(Operation).count() == 0 and db.query(Job).count() == 0


def test_no_runbook_template_is_a_clear_503(compute):
    cloud, app, p, t, tmp = compute
    with app.state.sessions() as db:
        db.execute(Operation.__table__.delete())
        from nimbus_api.models import JobTemplate
        db.query(JobTemplate).filter(JobTemplate.name == "nimbus.server_create").delete()
        db.commit()
    r = boot(cloud, t["member-a"], "x", status=503)
    assert "nimbus.server_create" in r["serviceUnavailable"]["message"]


def test_concurrent_creates_never_pass_the_quota(compute, live_server_for):
    cloud, app, p, t, tmp = compute
    call(cloud, "PUT", cloud.admin, "/os-quota-sets/" + p["a"], 200, json={"quota_set": {"instances": 5}})
    base = live_server_for(app)

    def one(n):
        r = httpx.post(base + C + "/servers", headers={"X-Auth-Token": t["member-a"]}, timeout=60,
                       json={"server": {"name": "slow-%d" % n, "flavorRef": "small", "imageRef": "tiny.qcow2"}})
        return r.status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = sorted(pool.map(one, range(20)))
    assert codes == [202] * 5 + [403] * 15
    absolute = call(cloud, "GET", t["member-a"], "/limits", 200)["limits"]["absolute"]
    assert (absolute["totalInstancesUsed"], absolute["totalCoresUsed"], absolute["totalRAMUsed"]) == (5, 10, 2560)
    (tmp / "go").write_text("")
    settle(app)
    servers = call(cloud, "GET", t["member-a"], "/servers/detail", 200)["servers"]
    assert sorted(s["status"] for s in servers) == ["ACTIVE"] * 5
    boot(cloud, t["member-a"], "one-more", status=403)


def test_a_change_that_ends_while_the_view_is_read_still_shows_in_flight(compute, monkeypatch):
    """A resize whose job ends after the instances view began its read may be missing from that read: the
    answer shows it in flight (RESIZE), never VERIFY_RESIZE with the old flavor; the next read has the new one."""
    cloud, app, p, t, tmp = compute
    made = cloud.client.post(C + "/flavors", headers={"X-Auth-Token": cloud.admin}, json={"flavor": {
        "name": "m1.gated", "id": "gated", "vcpus": 2, "ram": 512, "disk": 2}})
    assert made.status_code == 200, made.text
    server_id = boot(cloud, t["member-a"], "stopped-race")["server"]["id"]
    wait_for(cloud, t["member-a"], server_id, "SHUTOFF")
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 202, json={"resize": {"flavorRef": "gated"}})
    views = app.state.resources
    real_read = views.read

    def read_then_let_the_job_end(kind):
        answer = real_read(kind)
        if kind == "instances" and not (tmp / "go").exists():
            (tmp / "go").write_text("")
            settle(app)
        return answer

    monkeypatch.setattr(views, "read", read_then_let_the_job_end)
    shown = call(cloud, "GET", t["member-a"], "/servers/" + server_id, 200)["server"]
    assert (shown["status"], shown["flavor"]["id"]) == ("RESIZE", "small")
    listed = {s["id"]: s for s in call(cloud, "GET", t["member-a"], "/servers/detail", 200)["servers"]}
    assert (listed[server_id]["status"], listed[server_id]["flavor"]["id"]) == ("VERIFY_RESIZE", "gated")


def test_a_stopped_server_is_resized_then_confirmed_or_reverted(compute):
    """Nova's resize of a stopped server: RESIZE while its job runs, VERIFY_RESIZE until confirmResize (the new
    flavor stays) or revertResize (the old one comes back, by the same runbook)."""
    cloud, app, p, t, tmp = compute
    for name, fid, vcpus, ram, disk in (("m1.large", "large", 4, 1024, 2), ("m1.medium", "medium", 3, 768, 2),
                                        ("m1.huge", "huge", 64, 1024, 2)):
        made = cloud.client.post(C + "/flavors", headers={"X-Auth-Token": cloud.admin}, json={"flavor": {
            "name": name, "id": fid, "vcpus": vcpus, "ram": ram, "disk": disk}})
        assert made.status_code == 200, made.text
    server_id = boot(cloud, t["member-a"], "stopped-1")["server"]["id"]
    running_id = boot(cloud, t["member-a"], "running-1")["server"]["id"]
    wait_for(cloud, t["member-a"], server_id, "SHUTOFF")
    wait_for(cloud, t["member-a"], running_id, "ACTIVE")
    resize = {"resize": {"flavorRef": "large"}}
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % running_id, 409, json=resize)  # stop it first
    call(cloud, "POST", t["member-b"], "/servers/%s/action" % server_id, 404, json=resize)
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 400, json={"resize": {"flavorRef": "small"}})
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 409, json={"confirmResize": None})
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 403, json={"resize": {"flavorRef": "huge"}})
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 202, json=resize)
    shown = wait_for(cloud, t["member-a"], server_id, "VERIFY_RESIZE")["server"]
    assert shown["flavor"]["id"] == "large"
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 409, json={"resize": {"flavorRef": "medium"}})
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 204, json={"confirmResize": None})
    shown = wait_for(cloud, t["member-a"], server_id, "SHUTOFF")["server"]
    assert shown["flavor"]["id"] == "large"
    # A disk never shrinks; a revert brings the old flavor back.
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 202, json={"resize": {"flavorRef": "medium"}})
    assert wait_for(cloud, t["member-a"], server_id, "VERIFY_RESIZE")["server"]["flavor"]["id"] == "medium"
    call(cloud, "POST", t["member-a"], "/servers/%s/action" % server_id, 202, json={"revertResize": None})
    settle(app)
    shown = wait_for(cloud, t["member-a"], server_id, "SHUTOFF")["server"]
    assert shown["flavor"]["id"] == "large"
    with app.state.sessions() as db:
        runs = [json.loads(db.get(Job, op.job_id).extra_vars)["server_flavor"]["name"] for op in
                db.query(Operation).filter(Operation.resource_id == server_id, Operation.action.in_(("resize", "revert")))
                .order_by(Operation.id)]
    assert runs == ["m1.large", "m1.medium", "m1.large"]
