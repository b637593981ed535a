"""Glance v2 over the image store: list and show as Glance filters them, create, upload, download, patch,
deactivate, reactivate and delete as jobs of the image runbooks, and a server booted from a store image.

The runbooks here are stand-ins with the real ones' names and variables, acting on a directory of image
records that the images view reads (the real runbooks and the image module run in the storage scenario and
in the all-in-one's client tests): the API's side of the contract is what is under test. They do check the
sha256 the API took, as the image module does.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest
from conftest import Cloud, bootstrapped_app, register_runbooks, settle, with_views
from fastapi.testclient import TestClient

from nimbus_api.models import Job

G = "/image/v2"
HAND_COPIED = {"id": "5d2f9e67-0c1a-5b8e-9a77-2f1c3e4d5a6b", "name": "nimbus-tiny.qcow2", "file": "nimbus-tiny.qcow2",
               "disk_format": "qcow2", "size": 1245184, "virtual_size": 16777216, "updated_at": "2026-11-30T12:00:00Z"}
# A hypervisor's copy of a store image: listed once, as the store's.
PULLED = {"id": "0b0e8a32-6b0c-4f4e-9a56-8a1d4c0d1a11", "name": "pulled", "file": "0b0e8a32-6b0c-4f4e-9a56-8a1d4c0d1a11",
          "disk_format": "qcow2", "size": 1, "virtual_size": 1}

STANDINS = {
    "image_create.yml": r"""
- hosts: compute
  gather_facts: false
  vars:
    upload: "{{ image_uploads_dir }}/{{ nimbus_project }}/{{ image_id }}"
  tasks:
    - name: Read the upload
      ansible.builtin.stat:
        path: "{{ upload }}"
        checksum_algorithm: sha256
      register: st
    - name: Take the checksums the record keeps
      ansible.builtin.stat:
        path: "{{ upload }}"
        checksum_algorithm: "{{ item }}"
      loop: [md5, sha512]
      register: sums
    - name: Check what arrived
      ansible.builtin.assert:
        that: "'sha256:' ~ st.stat.checksum == image_checksum"
        fail_msg: the upload's sha256 is not the one the API took
    - name: Refuse data that is not an image
      ansible.builtin.fail:
        msg: "image {{ image_name }} is in format vdi; only qcow2 and raw images are accepted"
      when: image_name is match('bad')
    - name: The data
      ansible.builtin.copy:
        src: "{{ upload }}"
        dest: "{{ standin_store }}/{{ image_id }}"
        mode: "0644"
    - name: The record
      ansible.builtin.copy:
        content: "{{ {'id': image_id, 'name': image_name, 'project': nimbus_project, 'status': 'active',
                      'visibility': image_visibility, 'members': [], 'protected': image_protected,
                      'min_disk': image_min_disk, 'min_ram': image_min_ram, 'properties': image_properties,
                      'disk_format': image_disk_format | default('qcow2'), 'size': st.stat.size,
                      'virtual_size': st.stat.size, 'checksum': sums.results[0].stat.checksum,
                      'os_hash_algo': 'sha512', 'os_hash_value': sums.results[1].stat.checksum, 'created_at': '2026-12-01T00:00:00Z',
                      'updated_at': '2026-12-01T00:00:00Z'} | to_json }}"
        dest: "{{ standin_store }}/{{ image_id }}.json"
        mode: "0644"
    - name: Remove the upload
      ansible.builtin.file:
        path: "{{ upload }}"
        state: absent
""",
    "image_update.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Read the record
      ansible.builtin.slurp:
        src: "{{ standin_store }}/{{ image_id }}.json"
      register: record
    - name: Refuse another project's image
      ansible.builtin.assert:
        that: (record.content | b64decode | from_json).project == nimbus_project
    - name: Change it
      ansible.builtin.copy:
        content: >-
          {{ (record.content | b64decode | from_json) | combine(
             {'status': 'deactivated' if image_state | default('present') == 'deactivated' else 'active'},
             {'visibility': image_visibility} if image_visibility is defined else {},
             {'protected': image_protected} if image_protected is defined else {},
             {'min_ram': image_min_ram} if image_min_ram is defined else {},
             {'min_disk': image_min_disk} if image_min_disk is defined else {},
             {'properties': image_properties} if image_properties is defined else {}) | to_json }}
        dest: "{{ standin_store }}/{{ image_id }}.json"
        mode: "0644"
""",
    "image_delete.yml": r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Remove the image
      ansible.builtin.file:
        path: "{{ standin_store }}/{{ image_id }}{{ item }}"
        state: absent
      loop: ["", ".json"]
""",
}


def read_store(directory):
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


class StoreServer:
    """The stand-in runbooks, a store directory the images view reads, and the store's web server (the API
    streams downloads from it), for an app made with ``views_settings``."""

    def __init__(self, app, tmp_path):
        self.store, self.uploads = tmp_path / "store", tmp_path / "uploads"
        self.store.mkdir()
        settings = app.state.settings
        for name, text in STANDINS.items():
            (settings.playbooks_dir / name).write_text(text)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(self.store))
        handler.log_message = lambda *a: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        settings.image_uploads_dir = self.uploads
        settings.image_store_url = "http://127.0.0.1:%d" % self.server.server_address[1]
        with_views(app, images=lambda: read_store(self.store), cached_images=lambda: [HAND_COPIED, PULLED])

    def template_vars(self):
        return {"standin_store": str(self.store), "image_uploads_dir": str(self.uploads)}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def glance(views_settings, tmp_path):
    app = bootstrapped_app(views_settings)
    app.state.settings.image_upload_max_bytes = 64 * 1024
    served = StoreServer(app, tmp_path)
    with TestClient(app) as client:
        cloud = Cloud(client)
        a, b = cloud.project("proj-a"), cloud.project("proj-b")
        cloud.user("member-a", roles=[(a, "member")])
        cloud.user("reader-a", roles=[(a, "reader")])
        cloud.user("member-b", roles=[(b, "member")])
        register_runbooks(app, **served.template_vars())
        made = client.post("/compute/v2.1/flavors", headers={"X-Auth-Token": cloud.admin},
                           json={"flavor": {"name": "m1.nano", "id": "nano", "vcpus": 1, "ram": 256, "disk": 1}})
        assert made.status_code == 200, made.text
        tokens = {n: cloud.token(n, "password-123", p) for n, p in
                  (("member-a", "proj-a"), ("reader-a", "proj-a"), ("member-b", "proj-b"))}
        tokens["admin"] = cloud.admin
        yield cloud, app, {"a": a, "b": b}, tokens, served.store, served.uploads
    served.close()


def call(cloud, method, token, path, status, **kw):
    headers = dict({"X-Auth-Token": token} if token else {}, **kw.pop("headers", {}))
    r = cloud.client.request(method, G + path, headers=headers, **kw)
    assert r.status_code == status, r.text
    return r.json() if r.content and "json" in r.headers.get("content-type", "") else r


def upload(cloud, app, token, name="cirros", data=b"QFI\xfb" + b"\0" * 4096, status=204, **attrs):
    made = call(cloud, "POST", token, "/images", 201, json=dict({"name": name, "disk_format": "qcow2",
                                                                 "container_format": "bare"}, **attrs))
    assert made["status"] == "queued"
    call(cloud, "PUT", token, "/images/%s/file" % made["id"], status, content=data,
         headers={"Content-Type": "application/octet-stream"})
    settle(app)
    return made["id"]


def names(cloud, token, query=""):
    return sorted(i["name"] for i in call(cloud, "GET", token, "/images" + query, 200)["images"])


def test_versions_and_the_images_copied_by_hand(glance):
    cloud, app, p, t, store, uploads = glance
    assert cloud.client.get("/image").json()["versions"][0]["links"][0]["href"].endswith("/image/v2/")
    # A file copied into the hypervisors' caches is a public image; a pulled copy of a store image is not listed.
    assert names(cloud, t["member-b"]) == ["nimbus-tiny.qcow2"]
    tiny = call(cloud, "GET", t["member-a"], "/images/" + HAND_COPIED["id"], 200)
    assert (tiny["status"], tiny["visibility"], tiny["owner"], tiny["container_format"]) == (
        "active", "public", None, "bare")
    # It is not the store's to change or delete.
    call(cloud, "DELETE", t["admin"], "/images/" + HAND_COPIED["id"], 403)
    assert call(cloud, "GET", t["member-a"], "/images/nope", 404)["code"] == 404
    assert call(cloud, "GET", None, "/images", 401)["code"] == 401
    assert call(cloud, "GET", t["member-a"], "/images?limit=0", 400)["code"] == 400


def test_create_upload_show_download_and_delete(glance):
    cloud, app, p, t, store, uploads = glance
    data = b"QFI\xfb" + bytes(range(256)) * 64
    image_id = upload(cloud, app, t["member-a"], data=data, min_ram=128, os_type="linux")
    shown = call(cloud, "GET", t["member-a"], "/images/" + image_id, 200)
    assert (shown["status"], shown["owner"], shown["size"], shown["visibility"], shown["min_ram"]) == (
        "active", p["a"], len(data), "shared", 128)
    assert shown["os_type"] == "linux"  # properties sit at the top level, as in Glance
    # The upload waited in the API's directory until the job took it; nothing is left there.
    assert list(uploads.rglob("*")) == [uploads / p["a"]]
    # Shared without members: the owner's alone; the cloud admin sees every image.
    assert "cirros" in names(cloud, t["member-a"]) and "cirros" in names(cloud, t["reader-a"])
    assert "cirros" not in names(cloud, t["member-b"]) and "cirros" in names(cloud, t["admin"])
    call(cloud, "GET", t["member-b"], "/images/" + image_id, 404)
    # Download: the store's bytes, streamed.
    got = cloud.client.get(G + "/images/%s/file" % image_id, headers={"X-Auth-Token": t["member-a"]})
    assert got.status_code == 200 and got.content == data
    call(cloud, "GET", t["member-b"], "/images/%s/file" % image_id, 404)
    # A reader cannot delete, another project cannot; the owner can.
    call(cloud, "DELETE", t["reader-a"], "/images/" + image_id, 403)
    call(cloud, "DELETE", t["member-b"], "/images/" + image_id, 404)
    call(cloud, "DELETE", t["member-a"], "/images/" + image_id, 204)
    settle(app)
    call(cloud, "GET", t["member-a"], "/images/" + image_id, 404)
    assert not (store / image_id).exists() and not (store / (image_id + ".json")).exists()


def test_what_a_create_and_an_upload_refuse(glance):
    cloud, app, p, t, store, uploads = glance
    token = t["member-a"]
    for body, status in (({"name": "x", "disk_format": "vmdk"}, 400), ({"name": "x", "container_format": "ova"}, 400),
                         ({"name": "x", "visibility": "public"}, 403), ({"name": "x", "status": "active"}, 403),
                         ({"name": "x", "owner": p["b"]}, 403), ({"name": "x", "min_ram": -1}, 400),
                         ({"name": "x", "bad key": "v"}, 400), ({"name": "x", "id": "../../etc"}, 400),
                         ({"name": "x", "prop": {"nested": 1}}, 400), ({"name": ""}, 400)):
        call(cloud, "POST", token, "/images", status, json=body)
    call(cloud, "POST", t["reader-a"], "/images", 403, json={"name": "x"})
    made = call(cloud, "POST", token, "/images", 201, json={"name": "queued-one"})
    path = "/images/%s/file" % made["id"]
    # Another project's upload target does not exist for it; an empty body and a body over the limit are refused
    # and leave nothing behind.
    call(cloud, "PUT", t["member-b"], path, 404, content=b"x")
    call(cloud, "PUT", token, path, 400, content=b"")
    call(cloud, "PUT", token, path, 413, content=b"x" * (64 * 1024 + 1))
    assert [f for f in uploads.rglob("*") if f.is_file()] == []
    assert call(cloud, "GET", token, "/images/" + made["id"], 200)["status"] == "queued"
    # A job that refuses the data: the image is killed, and says why.
    bad = upload(cloud, app, token, name="bad-data")
    shown = call(cloud, "GET", token, "/images/" + bad, 200)
    assert shown["status"] == "killed"
    # Uploading twice to an image with data is refused.
    good = upload(cloud, app, token, name="good")
    call(cloud, "PUT", token, "/images/%s/file" % good, 409, content=b"QFI\xfb more")
    # A queued image is deleted at once, with nothing queued.
    call(cloud, "DELETE", token, "/images/" + made["id"], 204)
    call(cloud, "GET", token, "/images/" + made["id"], 404)


def test_a_property_is_data_to_the_runbook(glance):
    cloud, app, p, t, store, uploads = glance
    hostile = "{{ lookup('ansible.builtin.pipe', 'id') }}"
    image_id = upload(cloud, app, t["member-a"], name="{{ 7 * 7 }}", note=hostile)
    record = json.loads((store / (image_id + ".json")).read_text())
    assert record["properties"] == {"note": hostile} and record["name"] == "{{ 7 * 7 }}"
    with app.state.sessions() as db:
        job = db.query(Job).order_by(Job.created_at.desc()).first()
        assert job.status == "successful"


def test_patch_deactivate_reactivate_protect(glance):
    cloud, app, p, t, store, uploads = glance
    token = t["member-a"]
    image_id = upload(cloud, app, token)
    patch = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    call(cloud, "PATCH", token, "/images/" + image_id, 415, json=[])
    call(cloud, "PATCH", token, "/images/" + image_id, 200, headers=patch, content=json.dumps([
        {"op": "add", "path": "/hw_disk_bus", "value": "virtio"}, {"op": "replace", "path": "/min_disk", "value": 2},
        {"op": "replace", "path": "/protected", "value": True}]))
    call(cloud, "PATCH", token, "/images/" + image_id, 403, headers=patch,
         content=json.dumps([{"op": "replace", "path": "/status", "value": "active"}]))
    call(cloud, "PATCH", token, "/images/" + image_id, 403, headers=patch,
         content=json.dumps([{"op": "replace", "path": "/visibility", "value": "public"}]))
    call(cloud, "PATCH", t["member-b"], "/images/" + image_id, 404, headers=patch, content="[]")
    settle(app)
    shown = call(cloud, "GET", token, "/images/" + image_id, 200)
    assert (shown["hw_disk_bus"], shown["min_disk"], shown["protected"]) == ("virtio", 2, True)
    # Protected: not deleted.
    call(cloud, "DELETE", token, "/images/" + image_id, 403)
    # Deactivated: the owner cannot download it, a server cannot boot it; reactivated, both work again.
    call(cloud, "POST", token, "/images/%s/actions/deactivate" % image_id, 204)
    settle(app)
    assert call(cloud, "GET", token, "/images/" + image_id, 200)["status"] == "deactivated"
    call(cloud, "GET", token, "/images/%s/file" % image_id, 403)
    assert cloud.client.get(G + "/images/%s/file" % image_id, headers={"X-Auth-Token": t["admin"]}).status_code == 200
    r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": token}, json={
        "server": {"name": "vm", "flavorRef": "nano", "imageRef": image_id, "networks": "none"}})
    assert r.status_code == 400 and "could not be found" in r.text
    call(cloud, "POST", token, "/images/%s/actions/reactivate" % image_id, 204)
    settle(app)
    assert call(cloud, "GET", token, "/images/" + image_id, 200)["status"] == "active"
    call(cloud, "POST", t["member-b"], "/images/%s/actions/deactivate" % image_id, 404)


def test_a_server_boots_a_store_image_by_id_or_name(glance):
    cloud, app, p, t, store, uploads = glance
    image_id = upload(cloud, app, t["member-a"], name="boot-me")
    sent = []
    for ref in (image_id, "boot-me", "nimbus-tiny.qcow2"):
        r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t["member-a"]}, json={
            "server": {"name": "vm", "flavorRef": "nano", "imageRef": ref, "networks": "none"}})
        assert r.status_code == 202, r.text
        with app.state.sessions() as db:
            job = db.query(Job).order_by(Job.created_at.desc()).first()
            sent.append(json.loads(job.extra_vars)["server_image"])
    # The store image by its id (the hypervisor pulls it), the hand-copied file by its name.
    assert sent == [image_id, image_id, "nimbus-tiny.qcow2"]
    # Another project does not see it, so cannot boot it.
    for ref in (image_id, "boot-me", "../nimbus-tiny.qcow2"):
        r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t["member-b"]}, json={
            "server": {"name": "vm", "flavorRef": "nano", "imageRef": ref, "networks": "none"}})
        assert r.status_code == 400 and "could not be found" in r.json()["badRequest"]["message"]
