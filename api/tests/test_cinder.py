"""Cinder v3 over the storage host: volumes, snapshots, backups and restores, volume types, quotas and limits,
and attaching through Nova's os-volume_attachments, as jobs of the volume runbooks.

The runbooks here are stand-ins with the real ones' names and variables, keeping records in directories that
the volumes, snapshots and backups views read (the real runbooks and volume modules run in the all-in-one's
client tests and the storage scenario): the API's side of the contract is what is under test.
"""

from __future__ import annotations

import json

import pytest
from conftest import Cloud, bootstrapped_app, register_runbooks, settle, with_views
from fastapi.testclient import TestClient

from nimbus_api.models import Job
from nimbus_api.openstack import cinder

V = "/volume/v3"
SERVER = "3c9d4f1a-7b2e-4c5d-9e8f-1a2b3c4d5e6f"
TYPES = [{"name": "raw", "backend": "rawfile", "format": "raw", "default": False},
         {"name": "standard", "backend": "file", "format": "qcow2", "default": True}]

_RECORD = r"""
    - name: Refuse another project's
      ansible.builtin.assert:
        that: (lookup('ansible.builtin.file', path) | from_json).project == nimbus_project
      vars:
        path: "{{ standin_dir }}/{{ kind }}/{{ ident }}.json"
      when: (standin_dir ~ '/' ~ kind ~ '/' ~ ident ~ '.json') is file
"""

STANDINS = {
    "volume_create.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Refuse what the storage host refuses
      ansible.builtin.fail:
        msg: "volume {{ volume_name }}: the pool file has no room for {{ volume_size }} GiB"
      when: volume_name is match('full')
    - name: The record
      ansible.builtin.copy:
        content: "{{ {'id': volume_id, 'name': volume_name, 'size': volume_size, 'project': nimbus_project,
                      'volume_type': volume_type | default('standard'), 'status': 'available',
                      'description': volume_description | default(''), 'metadata': volume_metadata | default({}),
                      'attachments': [], 'bootable': volume_image is defined,
                      'source': ('image:' ~ volume_image) if volume_image is defined else
                                ('snapshot:' ~ volume_snapshot_id) if volume_snapshot_id is defined else
                                ('volume:' ~ volume_source_id) if volume_source_id is defined else
                                ('backup:' ~ volume_backup_id) if volume_backup_id is defined else none,
                      'created_at': '2026-12-01T00:00:00Z'} | to_json }}"
        dest: "{{ standin_dir }}/volumes/{{ volume_id }}.json"
        mode: "0644"
""",
    "volume_update.yml": r"""
- hosts: compute
  gather_facts: false
  vars:
    record: "{{ lookup('ansible.builtin.file', standin_dir ~ '/volumes/' ~ volume_id ~ '.json') | from_json }}"
  tasks:
    - name: Change it
      ansible.builtin.copy:
        content: >-
          {{ record | combine({'size': volume_size} if volume_size is defined else {},
                              {'name': volume_name} if volume_name is defined else {},
                              {'description': volume_description} if volume_description is defined else {},
                              {'metadata': volume_metadata} if volume_metadata is defined else {}) | to_json }}
        dest: "{{ standin_dir }}/volumes/{{ volume_id }}.json"
        mode: "0644"
""",
    "volume_delete.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Remove it, and with cascade its snapshots
      ansible.builtin.file:
        path: "{{ item }}"
        state: absent
      loop: >-
        {{ [standin_dir ~ '/volumes/' ~ volume_id ~ '.json']
           + (query('ansible.builtin.fileglob', standin_dir ~ '/snapshots/*.json')
              | select('search', '') | list if volume_cascade | default(false) else []) }}
""",
    "volume_attach.yml": r"""
- hosts: compute
  gather_facts: false
  vars:
    record: "{{ lookup('ansible.builtin.file', standin_dir ~ '/volumes/' ~ volume_id ~ '.json') | from_json }}"
  tasks:
    - name: Attach it
      ansible.builtin.copy:
        content: >-
          {{ record | combine({'status': 'in-use', 'attachments': [{'server_id': server_id, 'host': 'hv1',
                                                                    'device': volume_device | default('vdc')}]})
             | to_json }}
        dest: "{{ standin_dir }}/volumes/{{ volume_id }}.json"
        mode: "0644"
""",
    "volume_detach.yml": r"""
- hosts: compute
  gather_facts: false
  vars:
    record: "{{ lookup('ansible.builtin.file', standin_dir ~ '/volumes/' ~ volume_id ~ '.json') | from_json }}"
  tasks:
    - name: Detach it
      ansible.builtin.copy:
        content: "{{ record | combine({'status': 'available', 'attachments': []}) | to_json }}"
        dest: "{{ standin_dir }}/volumes/{{ volume_id }}.json"
        mode: "0644"
""",
    # Boots from a volume only (a server of the image is the Nova tests' business).
    "server_create.yml": r"""
- hosts: compute
  gather_facts: false
  vars:
    record: "{{ lookup('ansible.builtin.file', standin_dir ~ '/volumes/' ~ server_boot_volume ~ '.json') | from_json }}"
  tasks:
    - name: Refuse another project's volume
      ansible.builtin.assert:
        that: record.project == nimbus_project and server_image is not defined
    - name: The server
      ansible.builtin.copy:
        content: "{{ {'uuid': server_id, 'name': server_id, 'project': nimbus_project, 'state': 'running',
                      'vcpus': server_flavor.vcpus, 'ram_mb': server_flavor.ram_mb, 'metadata': server_metadata,
                      'flavor': {'name': server_flavor.name}, 'nics': [],
                      'disks': [{'device': 'vda', 'role': 'root', 'volume_id': server_boot_volume}]} | to_json }}"
        dest: "{{ standin_dir }}/servers/{{ server_id }}.json"
        mode: "0644"
    - name: The volume, in use
      ansible.builtin.copy:
        content: "{{ record | combine({'status': 'in-use', 'attachments': [{'server_id': server_id, 'host': 'hv1'}]})
                     | to_json }}"
        dest: "{{ standin_dir }}/volumes/{{ server_boot_volume }}.json"
        mode: "0644"
""",
    "snapshot_create.yml": r"""
- hosts: compute
  gather_facts: false
  vars:
    volume: "{{ lookup('ansible.builtin.file', standin_dir ~ '/volumes/' ~ volume_id ~ '.json') | from_json }}"
  tasks:
    - name: The record
      ansible.builtin.copy:
        content: "{{ {'id': snapshot_id, 'name': snapshot_name, 'volume_id': volume_id, 'size': volume.size,
                      'project': nimbus_project, 'status': 'available', 'metadata': snapshot_metadata | default({}),
                      'created_at': '2026-12-01T00:00:01Z'} | to_json }}"
        dest: "{{ standin_dir }}/snapshots/{{ snapshot_id }}.json"
        mode: "0644"
""",
    "snapshot_delete.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Remove it
      ansible.builtin.file:
        path: "{{ standin_dir }}/snapshots/{{ snapshot_id }}.json"
        state: absent
""",
    "backup_create.yml": r"""
- hosts: compute
  gather_facts: false
  vars:
    volume: "{{ lookup('ansible.builtin.file', standin_dir ~ '/volumes/' ~ volume_id ~ '.json') | from_json }}"
  tasks:
    - name: The record
      ansible.builtin.copy:
        content: "{{ {'id': backup_id, 'name': backup_name, 'volume_id': volume_id, 'size': volume.size,
                      'project': nimbus_project, 'status': 'available', 'created_at': '2026-12-01T00:00:02Z'}
                     | to_json }}"
        dest: "{{ standin_dir }}/backups/{{ backup_id }}.json"
        mode: "0644"
""",
    "backup_delete.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Remove it
      ansible.builtin.file:
        path: "{{ standin_dir }}/backups/{{ backup_id }}.json"
        state: absent
""",
}


def _read(directory):
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def _instances(directory, project):
    """The compute host's view: one server of project a, with the volumes attached to it as disks, and the servers
    the server_create stand-in made."""
    disks = [{"device": "vda", "role": "root"}] + [
        {"device": a.get("device", "vdc"), "role": "volume", "volume_id": v["id"]}
        for v in _read(directory / "volumes") for a in v.get("attachments") or [] if a["server_id"] == SERVER]
    return [{"name": SERVER, "uuid": SERVER, "project": project, "state": "running", "vcpus": 1, "ram_mb": 256,
             "metadata": {"display_name": "vm"}, "disks": disks, "nics": [], "flavor": None}] + _read(directory / "servers")


@pytest.fixture
def cinder_cloud(views_settings, tmp_path):
    app = bootstrapped_app(views_settings)
    records = tmp_path / "records"
    for kind in ("volumes", "snapshots", "backups", "servers"):
        (records / kind).mkdir(parents=True)
    for name, text in STANDINS.items():
        (app.state.settings.playbooks_dir / name).write_text(text)
    with TestClient(app) as client:
        cloud = Cloud(client)
        a, b = cloud.project("proj-a"), cloud.project("proj-b")
        cloud.user("member-a", roles=[(a, "member")])
        cloud.user("reader-a", roles=[(a, "reader")])
        cloud.user("member-b", roles=[(b, "member")])
        with_views(app, volumes=lambda: _read(records / "volumes"),
                   volume_snapshots=lambda: _read(records / "snapshots"),
                   volume_backups=lambda: _read(records / "backups"), volume_types=lambda: list(TYPES),
                   instances=lambda: _instances(records, a), images=lambda: [], cached_images=lambda: [])
        register_runbooks(app, standin_dir=str(records))
        tokens = {n: cloud.token(n, "password-123", p) for n, p in
                  (("member-a", "proj-a"), ("reader-a", "proj-a"), ("member-b", "proj-b"))}
        tokens["admin"] = cloud.admin
        yield cloud, app, {"a": a, "b": b}, tokens, records


def call(cloud, method, token, path, status, prefix=V, **kw):
    headers = dict({"X-Auth-Token": token} if token else {}, **kw.pop("headers", {}))
    r = cloud.client.request(method, prefix + path, headers=headers, **kw)
    assert r.status_code == status, r.text
    return r.json() if r.content and "json" in r.headers.get("content-type", "") else r


def create(cloud, app, token, status=202, **volume):
    made = call(cloud, "POST", token, "/volumes", status, json={"volume": dict({"size": 1}, **volume)})
    if status == 202:
        assert made["volume"]["status"] == "creating"
        settle(app)
        return made["volume"]["id"]
    return made


def test_versions_types_microversions_and_error_shapes(cinder_cloud):
    cloud, app, p, t, records = cinder_cloud
    assert cloud.client.get("/volume").json()["versions"][0]["links"][0]["href"].endswith("/volume/v3/")
    assert cloud.client.get("/volume/v3/").json()["version"]["version"] == "3.0"
    types = call(cloud, "GET", t["member-a"], "/types", 200)["volume_types"]
    assert [(x["name"], x["is_default"], x["extra_specs"]["volume_backend_name"]) for x in types] == [
        ("raw", False, "rawfile"), ("standard", True, "file")]
    by_id = call(cloud, "GET", t["member-a"], "/types/" + types[0]["id"], 200)["volume_type"]
    assert by_id["name"] == "raw" and by_id["id"] == cinder.type_id("raw")
    assert call(cloud, "GET", t["member-a"], "/types/default", 200)["volume_type"]["name"] == "standard"
    assert call(cloud, "GET", t["member-a"], "/types/nope", 404)["itemNotFound"]["code"] == 404
    # Microversion 3.0 only; the answer says which one it is.
    ok = cloud.client.get(V + "/volumes", headers={"X-Auth-Token": t["member-a"], "OpenStack-API-Version": "volume 3.0"})
    assert ok.status_code == 200 and ok.headers["openstack-api-version"] == "volume 3.0"
    refused = cloud.client.get(V + "/volumes", headers={"X-Auth-Token": t["member-a"],
                                                        "OpenStack-API-Version": "volume 3.70"})
    assert refused.status_code == 406
    # The catalog's form and the project-in-path form; another project's path is refused.
    call(cloud, "GET", t["member-a"], "/%s/volumes" % p["a"], 200)
    call(cloud, "GET", t["member-a"], "/%s/volumes" % p["b"], 403)
    assert call(cloud, "GET", None, "/volumes", 401)["unauthorized"]["code"] == 401
    assert call(cloud, "GET", t["member-a"], "/volumes/nope", 404)["itemNotFound"]["message"].startswith("Volume")


def test_volume_lifecycle(cinder_cloud):
    cloud, app, p, t, records = cinder_cloud
    token = t["member-a"]
    volume_id = create(cloud, app, token, name="data", size=2, description="logs", metadata={"tier": "gold"},
                       volume_type="raw")
    shown = call(cloud, "GET", token, "/volumes/" + volume_id, 200)["volume"]
    assert (shown["name"], shown["size"], shown["status"], shown["volume_type"], shown["metadata"],
            shown["os-vol-tenant-attr:tenant_id"], shown["bootable"]) == (
        "data", 2, "available", "raw", {"tier": "gold"}, p["a"], "false")
    assert [v["name"] for v in call(cloud, "GET", t["reader-a"], "/volumes", 200)["volumes"]] == ["data"]
    assert call(cloud, "GET", token, "/volumes/detail?name=data", 200)["volumes"][0]["id"] == volume_id
    assert call(cloud, "GET", token, "/volumes/detail?name=other", 200)["volumes"] == []
    # Another project sees nothing; a reader changes nothing.
    assert call(cloud, "GET", t["member-b"], "/volumes", 200)["volumes"] == []
    call(cloud, "GET", t["member-b"], "/volumes/" + volume_id, 404)
    call(cloud, "DELETE", t["member-b"], "/volumes/" + volume_id, 404)
    call(cloud, "POST", t["reader-a"], "/volumes", 403, json={"volume": {"size": 1}})
    # The admin sees it with all_tenants.
    assert volume_id in [v["id"] for v in call(cloud, "GET", t["admin"], "/volumes/detail?all_tenants=1", 200)["volumes"]]
    # Grow: only larger; the job grows it.
    call(cloud, "POST", token, "/volumes/%s/action" % volume_id, 400, json={"os-extend": {"new_size": 2}})
    call(cloud, "POST", token, "/volumes/%s/action" % volume_id, 400, json={"os-extend": {"new_size": "x"}})
    call(cloud, "POST", token, "/volumes/%s/action" % volume_id, 400, json={"os-reset_status": {"status": "x"}})
    call(cloud, "POST", token, "/volumes/%s/action" % volume_id, 202, json={"os-extend": {"new_size": 3}})
    settle(app)
    assert call(cloud, "GET", token, "/volumes/" + volume_id, 200)["volume"]["size"] == 3
    # Rename and metadata.
    call(cloud, "PUT", token, "/volumes/" + volume_id, 200, json={"volume": {"name": "data2"}})
    settle(app)
    call(cloud, "POST", token, "/volumes/%s/metadata" % volume_id, 200, json={"metadata": {"owner": "ops"}})
    settle(app)
    assert call(cloud, "GET", token, "/volumes/%s/metadata" % volume_id, 200)["metadata"] == {
        "tier": "gold", "owner": "ops"}
    call(cloud, "DELETE", token, "/volumes/%s/metadata/tier" % volume_id, 200)
    settle(app)
    shown = call(cloud, "GET", token, "/volumes/" + volume_id, 200)["volume"]
    assert (shown["name"], shown["metadata"]) == ("data2", {"owner": "ops"})
    # Delete.
    call(cloud, "DELETE", token, "/volumes/" + volume_id, 202)
    settle(app)
    call(cloud, "GET", token, "/volumes/" + volume_id, 404)
    assert list((records / "volumes").iterdir()) == []


def test_a_failed_create_shows_error_and_is_deleted(cinder_cloud):
    cloud, app, p, t, records = cinder_cloud
    volume_id = create(cloud, app, t["member-a"], name="full-pool", size=5)
    shown = call(cloud, "GET", t["member-a"], "/volumes/" + volume_id, 200)["volume"]
    assert shown["status"] == "error" and "no room" in shown["fault"]
    call(cloud, "DELETE", t["member-a"], "/volumes/" + volume_id, 202)
    settle(app)
    call(cloud, "GET", t["member-a"], "/volumes/" + volume_id, 404)


def test_snapshots_backups_and_restores(cinder_cloud):
    cloud, app, p, t, records = cinder_cloud
    token = t["member-a"]
    volume_id = create(cloud, app, token, name="db", size=2)
    snap = call(cloud, "POST", token, "/snapshots", 202, json={"snapshot": {"volume_id": volume_id, "name": "s1"}})
    assert snap["snapshot"]["status"] == "creating"
    settle(app)
    snapshot_id = snap["snapshot"]["id"]
    shown = call(cloud, "GET", token, "/snapshots/" + snapshot_id, 200)["snapshot"]
    assert (shown["status"], shown["size"], shown["volume_id"]) == ("available", 2, volume_id)
    assert [s["id"] for s in call(cloud, "GET", token, "/snapshots/detail", 200)["snapshots"]] == [snapshot_id]
    call(cloud, "GET", t["member-b"], "/snapshots/" + snapshot_id, 404)
    # A volume from the snapshot: not smaller than it.
    create(cloud, app, token, status=400, snapshot_id=snapshot_id, size=1)
    clone = create(cloud, app, token, name="from-snap", snapshot_id=snapshot_id, size=None)
    assert call(cloud, "GET", token, "/volumes/" + clone, 200)["volume"]["snapshot_id"] == snapshot_id
    # Another project's snapshot is no source.
    create(cloud, app, t["member-b"], status=404, snapshot_id=snapshot_id, size=None)
    # A volume with snapshots is deleted only with cascade.
    call(cloud, "DELETE", token, "/volumes/" + volume_id, 400)
    # A backup, and its restore into a new volume.
    backup = call(cloud, "POST", token, "/backups", 202, json={"backup": {"volume_id": volume_id, "name": "b1"}})
    settle(app)
    backup_id = backup["backup"]["id"]
    assert call(cloud, "GET", token, "/backups/" + backup_id, 200)["backup"]["status"] == "available"
    call(cloud, "POST", token, "/backups", 400, json={"backup": {"volume_id": volume_id, "incremental": True}})
    restored = call(cloud, "POST", token, "/backups/%s/restore" % backup_id, 202, json={"restore": {"name": "back"}})
    settle(app)
    volume = call(cloud, "GET", token, "/volumes/" + restored["restore"]["volume_id"], 200)["volume"]
    assert (volume["name"], volume["size"], volume["status"]) == ("back", 2, "available")
    call(cloud, "POST", token, "/backups/%s/restore" % backup_id, 400, json={"restore": {"volume_id": volume_id}})
    call(cloud, "DELETE", token, "/backups/" + backup_id, 202)
    call(cloud, "DELETE", token, "/volumes/%s?cascade=true" % volume_id, 202)
    settle(app)
    assert call(cloud, "GET", token, "/backups", 200)["backups"] == []
    call(cloud, "GET", token, "/volumes/" + volume_id, 404)


def test_quotas_and_limits(cinder_cloud):
    cloud, app, p, t, records = cinder_cloud
    token = t["member-a"]
    path = "/os-quota-sets/" + p["a"]
    assert call(cloud, "GET", token, path, 200)["quota_set"]["volumes"] == 10
    call(cloud, "PUT", token, path, 403, json={"quota_set": {"volumes": 99}})
    call(cloud, "PUT", t["admin"], path, 400, json={"quota_set": {"cores": 1}})
    call(cloud, "PUT", t["admin"], path, 400, json={"quota_set": {"volumes": -5}})
    call(cloud, "GET", token, "/os-quota-sets/" + p["b"], 403)
    assert call(cloud, "PUT", t["admin"], path, 200, json={"quota_set": {"volumes": 1, "gigabytes": 3}})[
        "quota_set"]["gigabytes"] == 3
    create(cloud, app, token, name="one", size=2)
    refused = call(cloud, "POST", token, "/volumes", 413, json={"volume": {"size": 1}})
    assert "volumes" in refused["overLimit"]["message"]
    used = call(cloud, "GET", token, path + "?usage=true", 200)["quota_set"]
    assert (used["volumes"]["in_use"], used["gigabytes"]["in_use"], used["gigabytes"]["limit"]) == (1, 2, 3)
    absolute = call(cloud, "GET", token, "/limits", 200)["limits"]["absolute"]
    assert (absolute["maxTotalVolumes"], absolute["totalVolumesUsed"], absolute["totalGigabytesUsed"]) == (1, 1, 2)
    call(cloud, "PUT", t["admin"], path, 200, json={"quota_set": {"volumes": 5}})
    # Gigabytes: 2 used of 3; a snapshot of 2 more would pass it.
    volume_id = [v["id"] for v in call(cloud, "GET", token, "/volumes", 200)["volumes"]][0]
    call(cloud, "POST", token, "/snapshots", 413, json={"snapshot": {"volume_id": volume_id}})
    # Nova's quota reset leaves Cinder's limits alone, and Cinder's resets them.
    call(cloud, "DELETE", t["admin"], "/os-quota-sets/" + p["a"], 202, prefix="/compute/v2.1")
    assert call(cloud, "GET", token, path, 200)["quota_set"]["volumes"] == 5
    call(cloud, "DELETE", t["admin"], path, 200)
    assert call(cloud, "GET", token, path, 200)["quota_set"]["volumes"] == 10


def test_attach_and_detach_through_nova(cinder_cloud):
    cloud, app, p, t, records = cinder_cloud
    token = t["member-a"]
    nova = "/compute/v2.1/servers/%s/os-volume_attachments" % SERVER
    volume_id = create(cloud, app, token, name="disk")
    call(cloud, "POST", token, "", 400, prefix=nova, json={"volumeAttachment": {"volumeId": volume_id,
                                                                                "device": "/dev/sda"}})
    call(cloud, "POST", t["member-b"], "", 404, prefix=nova, json={"volumeAttachment": {"volumeId": volume_id}})
    call(cloud, "POST", token, "", 404, prefix=nova, json={"volumeAttachment": {
        "volumeId": "0b0e8a32-6b0c-4f4e-9a56-8a1d4c0d1a11"}})
    made = call(cloud, "POST", token, "", 200, prefix=nova, json={"volumeAttachment": {"volumeId": volume_id}})
    assert made["volumeAttachment"] == {"id": volume_id, "serverId": SERVER, "volumeId": volume_id, "device": None}
    assert call(cloud, "GET", token, "/volumes/" + volume_id, 200)["volume"]["status"] == "attaching"
    settle(app)
    volume = call(cloud, "GET", token, "/volumes/" + volume_id, 200)["volume"]
    assert volume["status"] == "in-use"
    assert [(a["server_id"], a["device"]) for a in volume["attachments"]] == [(SERVER, "/dev/vdc")]
    listed = call(cloud, "GET", token, "", 200, prefix=nova)["volumeAttachments"]
    assert listed == [{"id": volume_id, "serverId": SERVER, "volumeId": volume_id, "device": "/dev/vdc"}]
    # In use: not attached twice, not deleted, not snapshotted, not grown.
    call(cloud, "POST", token, "", 400, prefix=nova, json={"volumeAttachment": {"volumeId": volume_id}})
    call(cloud, "DELETE", token, "/volumes/" + volume_id, 400)
    call(cloud, "POST", token, "/snapshots", 400, json={"snapshot": {"volume_id": volume_id}})
    call(cloud, "POST", token, "/volumes/%s/action" % volume_id, 400, json={"os-extend": {"new_size": 5}})
    call(cloud, "DELETE", t["member-b"], "/" + volume_id, 404, prefix=nova)
    call(cloud, "DELETE", token, "/" + volume_id, 202, prefix=nova)
    settle(app)
    assert call(cloud, "GET", token, "/volumes/" + volume_id, 200)["volume"]["status"] == "available"
    assert call(cloud, "GET", token, "", 200, prefix=nova)["volumeAttachments"] == []
    call(cloud, "DELETE", token, "/" + volume_id, 404, prefix=nova)


def test_what_a_user_sends_is_data(cinder_cloud):
    cloud, app, p, t, records = cinder_cloud
    token = t["member-a"]
    hostile = "{{ lookup('ansible.builtin.pipe', 'id') }}"
    volume_id = create(cloud, app, token, name="{{ 7 * 7 }}", description=hostile, metadata={"k": hostile})
    record = json.loads((records / "volumes" / (volume_id + ".json")).read_text())
    assert (record["name"], record["description"], record["metadata"]) == ("{{ 7 * 7 }}", hostile, {"k": hostile})
    with app.state.sessions() as db:
        assert db.query(Job).order_by(Job.created_at.desc()).first().status == "successful"
    # Malformed ids, sizes, sources, types and metadata are refused before anything is queued.
    for body, status in (({"size": 0}, 400), ({"size": 99999}, 400), ({"size": "x"}, 400),
                         ({"snapshot_id": "../../etc/passwd"}, 400), ({"source_volid": "x; rm -rf /"}, 400),
                         ({"volume_type": "gold"}, 404), ({"metadata": {"k": {"nested": 1}}}, 400),
                         ({"metadata": ["a"]}, 400), ({"imageRef": "nimbus-tiny.qcow2"}, 400),
                         ({"snapshot_id": volume_id, "source_volid": volume_id}, 400),
                         ({"availability_zone": "elsewhere"}, 400), ({"multiattach": True}, 400), ({}, 400)):
        call(cloud, "POST", token, "/volumes", status, json={"volume": body})
    call(cloud, "POST", token, "/volumes", 400, json={"volume": "x"})
    with app.state.sessions() as db:
        assert db.query(Job).count() == 1


def test_a_cloud_without_storage_hosts_lists_nothing_and_makes_nothing(views_settings):
    app = bootstrapped_app(views_settings)
    with TestClient(app) as client:
        cloud = Cloud(client)
        a = cloud.project("proj-a")
        cloud.user("member-a", roles=[(a, "member")])
        token = cloud.token("member-a", "password-123", "proj-a")
        register_runbooks(app, standin_dir="/nonexistent")
        assert call(cloud, "GET", token, "/volumes/detail", 200)["volumes"] == []
        assert call(cloud, "GET", token, "/types", 200)["volume_types"] == []
        assert "no storage host" in call(cloud, "POST", token, "/volumes", 503,
                                         json={"volume": {"size": 1}})["serviceUnavailable"]["message"]
        with app.state.sessions() as db:
            assert db.query(Job).count() == 0


def test_concurrent_creates_never_pass_the_quota(cinder_cloud, live_server_for):
    """Twenty creates at once against a quota of five volumes: five are queued, fifteen refused, whether the
    jobs of the first ones have ended or not."""
    import concurrent.futures

    import httpx

    cloud, app, p, t, records = cinder_cloud
    call(cloud, "PUT", t["admin"], "/os-quota-sets/" + p["a"], 200, json={"quota_set": {"volumes": 5}})
    base = live_server_for(app)

    def one(n):
        return httpx.post(base + V + "/volumes", headers={"X-Auth-Token": t["member-a"]}, timeout=120,
                          json={"volume": {"name": "burst-%d" % n, "size": 1}}).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = sorted(pool.map(one, range(20)))
    assert codes == [202] * 5 + [413] * 15
    settle(app)
    assert len(call(cloud, "GET", t["member-a"], "/volumes", 200)["volumes"]) == 5
    create(cloud, app, t["member-a"], status=413)


def test_a_server_boots_from_a_volume_of_its_project(cinder_cloud):
    """block_device_mapping_v2 with one volume at boot_index 0: the job gets the volume instead of an image and
    records the attach; the server shows it at /dev/vda, which is never detached; whatever else is refused with
    nothing launched."""
    from nimbus_api.models import Operation

    cloud, app, p, t, records = cinder_cloud
    nova = "/compute/v2.1"
    flavor = call(cloud, "POST", t["admin"], "/flavors", 200, prefix=nova,
                  json={"flavor": {"name": "m1.bfv", "vcpus": 1, "ram": 128, "disk": 1}})["flavor"]["id"]
    root = create(cloud, app, t["member-a"], name="root")
    theirs = create(cloud, app, t["member-b"], name="theirs")

    def boot(mapping, status, **server):
        body = {"server": dict({"name": "bfv", "flavorRef": flavor, "networks": "none",
                                "block_device_mapping_v2": mapping}, **server)}
        return call(cloud, "POST", t["member-a"], "/servers", status, prefix=nova, json=body)

    def volume(ident, **given):
        return [dict({"boot_index": 0, "uuid": ident, "source_type": "volume", "destination_type": "volume"},
                     **given)]

    with app.state.sessions() as db:
        jobs = db.query(Job).count()
    for mapping, server, message in [
        (volume(theirs), {}, "failed to get volume"),
        (volume("../../etc/passwd"), {}, "must be a UUID"),
        (volume(root, delete_on_termination=True), {}, "delete_on_termination"),
        (volume(root, source_type="image"), {}, "only an existing volume"),
        (volume(root) + volume(root, boot_index=1), {}, "only the boot volume"),
        (volume(root, boot_index=1), {}, "only the boot volume"),
        (volume(root, device_name="/dev/vdb"), {}, "/dev/vda"),
        (volume(root), {"imageRef": "cirros"}, "not both"),
        (volume("cirros", source_type="image", destination_type="local"), {"imageRef": "other"}, "not imageRef"),
    ]:
        assert message in boot(mapping, 400, **server)["badRequest"]["message"], message
    with app.state.sessions() as db:
        assert db.query(Job).count() == jobs

    server = boot(volume(root), 202)["server"]["id"]
    with app.state.sessions() as db:
        made = db.query(Job).order_by(Job.created_at.desc()).first()
        extra = json.loads(made.extra_vars)
        assert extra["server_boot_volume"] == root and "server_image" not in extra
        # The job attaches the volume: the volume shows it, and changes to it wait for the job.
        attach = db.query(Operation).filter_by(resource="volume", resource_id=root, action="attach").one()
        assert attach.job_id == made.id
    settle(app)
    shown = call(cloud, "GET", t["member-a"], "/servers/" + server, 200, prefix=nova)["server"]
    assert shown["image"] == "" and shown["os-extended-volumes:volumes_attached"] == [
        {"id": root, "delete_on_termination": False}]
    attachments = call(cloud, "GET", t["member-a"], "/servers/%s/os-volume_attachments" % server, 200,
                       prefix=nova)["volumeAttachments"]
    assert [(a["volumeId"], a["device"]) for a in attachments] == [(root, "/dev/vda")]
    view = call(cloud, "GET", t["member-a"], "/volumes/" + root, 200)["volume"]
    assert view["status"] == "in-use" and [(a["server_id"], a["device"]) for a in view["attachments"]] == [
        (server, "/dev/vda")]
    assert "root device" in call(cloud, "DELETE", t["member-a"], "/servers/%s/os-volume_attachments/%s"
                                 % (server, root), 400, prefix=nova)["badRequest"]["message"]
    # In use now: not booted from again.
    assert "Invalid volume" in boot(volume(root), 400)["badRequest"]["message"]
