"""nimbus.cloud.image on a real store directory: real files, real qemu-img, a loopback HTTP server.

The module's whole cycle runs here against the same code the store host runs; only the store's settings
point at a temporary directory. The Molecule scenario `storage` does the same on container hosts and boots
an instance from the result.
"""

import errno
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _images as images
from ansible_collections.nimbus.cloud.plugins.modules.image import ImageModule
from ansible_collections.nimbus.cloud.plugins.modules.image_info import ImageInfoModule

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None or shutil.which("prlimit") is None,
                                reason="needs qemu-img and prlimit (tools/testbed installs them)")
MIB = 1024 ** 2


def qemu_img(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, capture_output=True)


@pytest.fixture
def store(tmp_path, monkeypatch):
    root = tmp_path / "store"
    root.mkdir()
    settings = tmp_path / "image-store.json"
    settings.write_text(json.dumps({"path": str(root), "url": "http://127.0.0.1:9"}))
    monkeypatch.setattr(images, "STORE_SETTINGS", str(settings))
    return root


@pytest.fixture
def sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    raw = src / "tiny.raw"
    raw.write_bytes(b"NIMBUS-STORE-IMAGE\n" + b"\0" * (MIB - 19))
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(raw), str(src / "tiny.qcow2"))
    # A raw file whose bytes are a qcow2 header would let a later reader guess qcow2: the name says raw.
    shutil.copy(str(src / "tiny.qcow2"), str(src / "named.raw"))
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", str(src / "backed.qcow2"), "1M")
    qemu_img("create", "-f", "vdi", str(src / "disk.vdi"), "1M")
    return src


@pytest.fixture
def http_source(sources):
    """The sources over HTTP on loopback; the handler records each request's path and Authorization header."""
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(sources), **kwargs)

        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1], seen
    server.shutdown()
    server.server_close()


def sha(path, algo="sha256"):
    return "%s:%s" % (algo, hashlib.new(algo, open(path, "rb").read()).hexdigest())


def listing(store):
    """Everything in the store but the lock, as relative paths."""
    out = []
    for base, dirs, files in os.walk(str(store)):
        for f in files:
            rel = os.path.relpath(os.path.join(base, f), str(store))
            if rel != ".lock":
                out.append(rel)
    return sorted(out)


def test_register_from_a_path_the_full_cycle(store, sources, run_module):
    args = {"name": "tiny", "path": str(sources / "tiny.qcow2"), "checksum": sha(sources / "tiny.qcow2"),
            "visibility": "public", "min_disk": 1, "properties": {"os_type": "linux"}}
    # check mode predicts and changes nothing
    result, failed = run_module(ImageModule, args, check_mode=True, diff=True)
    assert not failed and result["changed"] is True
    assert result["commands"][0].startswith("register image tiny (")
    assert listing(store) == []
    # create
    result, failed = run_module(ImageModule, args, diff=True)
    assert not failed and result["changed"] is True, result
    image = result["image"]
    image_id = image["id"]
    data = (store / image_id).read_bytes()
    assert data == (sources / "tiny.qcow2").read_bytes()
    assert image["disk_format"] == "qcow2" and image["virtual_size"] == MIB and image["size"] == len(data)
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["source"] == str(sources / "tiny.qcow2") and image["status"] == "active"
    assert result["diff"]["before"] == {} and result["diff"]["after"]["id"] == image_id
    record = json.loads((store / (image_id + ".json")).read_text())
    assert record["name"] == "tiny" and record["properties"] == {"os_type": "linux"}
    index = json.loads((store / "index.json").read_text())
    assert [i["id"] for i in index["images"]] == [image_id]
    # idempotent, in check mode too
    for check in (True, False):
        result, failed = run_module(ImageModule, args, check_mode=check)
        assert not failed and result["changed"] is False and result["image"]["id"] == image_id
    # an update: check mode predicts it, the run makes it, the next run is quiet
    update = dict(args, visibility="shared", members=["p2", "p1", "p2"], protected=True)
    result = run_module(ImageModule, update, check_mode=True, diff=True)[0]
    assert result["changed"] is True and result["diff"]["after"]["members"] == ["p1", "p2"]
    assert json.loads((store / (image_id + ".json")).read_text())["visibility"] == "public"
    result, failed = run_module(ImageModule, update)
    assert not failed and result["changed"] and result["image"]["visibility"] == "shared"
    assert run_module(ImageModule, update)[0]["changed"] is False
    # the data and the format are fixed
    result, failed = run_module(ImageModule, dict(update, disk_format="raw"))
    assert failed and "disk_format 'qcow2' -> 'raw' cannot change" in result["msg"]
    # deactivate and reactivate, each idempotent
    for state, status in (("deactivated", "deactivated"), ("present", "active")):
        result, failed = run_module(ImageModule, {"name": "tiny", "state": state})
        assert not failed and result["changed"] and result["image"]["status"] == status
        assert run_module(ImageModule, {"name": "tiny", "state": state})[0]["changed"] is False
    # protected: delete refused, nothing removed
    result, failed = run_module(ImageModule, {"name": "tiny", "state": "absent"})
    assert failed and "is protected" in result["msg"]
    assert image_id in listing(store)
    run_module(ImageModule, {"name": "tiny", "protected": False})
    # delete: check mode first, then for real, then again (nothing to do)
    result = run_module(ImageModule, {"id": image_id, "state": "absent"}, check_mode=True)[0]
    assert result["changed"] and image_id in listing(store)
    result, failed = run_module(ImageModule, {"id": image_id, "state": "absent"}, diff=True)
    assert not failed and result["changed"] and result["diff"]["after"] == {}
    assert listing(store) == ["index.json"]
    assert json.loads((store / "index.json").read_text()) == {"images": []}
    assert run_module(ImageModule, {"id": image_id, "state": "absent"})[0]["changed"] is False


def test_register_from_a_url_with_credentials_kept_out(store, http_source, sources, run_module):
    base, seen = http_source
    url = base + "/tiny.raw?signature=s3cr3t-token"
    args = {"name": "from-url", "url": url, "url_username": "glance", "url_password": "pa55-w0rd-x",
            "checksum": sha(sources / "tiny.raw", "sha512"), "disk_format": "qcow2",
            "convert": True}
    result, failed = run_module(ImageModule, args)
    assert not failed, result
    image = result["image"]
    assert image["disk_format"] == "qcow2" and image["virtual_size"] == MIB
    assert image["source"] == base + "/tiny.raw"
    stored = (store / image["id"]).read_bytes()
    assert stored[:4] == b"QFI\xfb" and image["os_hash_value"] == hashlib.sha512(stored).hexdigest()
    assert "pa55-w0rd-x" not in json.dumps(result) and "s3cr3t-token" not in json.dumps(result)
    assert not any("pa55-w0rd-x" in open(os.path.join(b, f)).read()
                   for b, _dirs, fs in os.walk(str(store)) for f in fs if f.endswith(".json"))
    assert [path for path, _auth in seen] == ["/tiny.raw?signature=s3cr3t-token"]
    assert seen[0][1].startswith("Basic ")  # the credentials were sent, and only there


@pytest.mark.parametrize("source,extra,message", [
    ("tiny.qcow2", {"checksum": "sha256:" + "0" * 64}, "sha256 checksum of .* expected 0000"),
    ("backed.qcow2", {}, "with a backing file \\(/etc/passwd\\): refused"),
    ("disk.vdi", {}, "is in format vdi; only qcow2 and raw images are accepted"),
    ("named.raw", {"disk_format": "raw"}, "holds a qcow2 image, not raw; set convert=true"),
])
def test_refused_sources_leave_nothing(store, sources, run_module, source, extra, message):
    result, failed = run_module(ImageModule, dict({"name": "bad", "path": str(sources / source)}, **extra))
    assert failed and re.search(message, result["msg"]), result
    assert [f for f in listing(store) if not f.startswith(".incoming")] == []
    assert os.listdir(str(store / images.INCOMING)) == []


@pytest.mark.parametrize("args,message", [
    ({"checksum": "md5:d41d8cd98f00b204e9800998ecf8427e"}, "md5 and sha1 are not accepted"),
    ({"checksum": "sha256:abc"}, "is not a sha256 digest"),
    ({"url": "file:///etc/passwd", "path": None}, "must be an http:// or https:// URL"),
    ({"url": "ftp://example.invalid/x", "path": None}, "must be an http:// or https:// URL"),
    ({"properties": {"status": "active"}}, "one of the image's own fields"),
    ({"properties": {"bad key": "x"}}, "image property name"),
    ({"members": ["p1"]}, "members are only for visibility=shared"),
    ({"min_ram": -1}, "min_ram must be 0 or more"),
    ({"id": "not-a-uuid"}, "is not a UUID"),
    ({"convert": True}, "convert=true needs disk_format"),
])
def test_bad_input_is_refused_before_anything(store, sources, run_module, args, message):
    task = dict({"name": "bad", "path": str(sources / "tiny.qcow2")}, **args)
    task = {k: v for k, v in task.items() if v is not None}
    result, failed = run_module(ImageModule, task)
    assert failed and message in result["msg"], result
    assert listing(store) == []


def test_a_path_inside_the_store_is_refused(store, sources, run_module):
    result, failed = run_module(ImageModule, {"name": "x", "path": str(sources / "tiny.qcow2")})
    assert not failed
    inside = str(store / result["image"]["id"])
    result, failed = run_module(ImageModule, {"name": "y", "path": inside})
    assert failed and "inside the image store" in result["msg"]


def test_a_redirect_away_from_http_is_not_followed(store, http_source, run_module):
    base = http_source[0]
    result, failed = run_module(ImageModule, {"name": "r", "url": base + "/redirect"})
    assert failed and "answered 302" in result["msg"], result
    assert [f for f in listing(store) if not f.startswith(".incoming")] == []


def test_a_full_store_is_a_clear_error(store, sources, run_module, monkeypatch):
    real = images.copy_stream
    monkeypatch.setattr(images, "copy_stream", lambda source, target, digests, what: real(_NoSpace(), target,
                                                                                          digests, what))
    result, failed = run_module(ImageModule, {"name": "big", "path": str(sources / "tiny.qcow2")})
    assert failed and "no space left" in result["msg"], result
    assert [f for f in listing(store) if not f.startswith(".incoming")] == []
    assert os.listdir(str(store / images.INCOMING)) == []


class _NoSpace:
    """A source whose copy hits a full disk: the write raises ENOSPC as a real full filesystem does."""

    def read(self, n):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_names_and_ids(store, sources, run_module):
    fixed = "0b0e8a32-6b0c-4f4e-9a56-8a1d4c0d1a11"
    a = run_module(ImageModule, {"name": "same", "id": fixed, "path": str(sources / "tiny.qcow2")})[0]["image"]
    assert a["id"] == fixed
    b = run_module(ImageModule, {"name": "same", "id": "1b0e8a32-6b0c-4f4e-9a56-8a1d4c0d1a11",
                                 "path": str(sources / "tiny.raw")})[0]["image"]
    result, failed = run_module(ImageModule, {"name": "same", "visibility": "public"})
    assert failed and "2 images are named same" in result["msg"]
    result, failed = run_module(ImageModule, {"id": fixed, "name": "other"})
    assert failed and "is named same, not other" in result["msg"]
    infos = run_module(ImageInfoModule, {"source": "store", "name": ["same"]})[0]["images"]
    assert sorted(i["id"] for i in infos) == sorted([a["id"], b["id"]])
    assert run_module(ImageInfoModule, {"source": "store", "id": [fixed]})[0]["images"][0]["disk_format"] == "qcow2"
    # a missing image without a source
    result, failed = run_module(ImageModule, {"name": "nothing"})
    assert failed and "does not exist: give src, path or url" in result["msg"]


def test_the_action_plugin_protocol(store, sources, run_module):
    """With src_on_controller and no path, a missing image asks for data and changes nothing."""
    result, failed = run_module(ImageModule, {"name": "up", "src_on_controller": "tiny.qcow2"})
    assert not failed and result["needs_data"] is True and result["changed"] is False
    assert listing(store) == []
    result = run_module(ImageModule, {"name": "up", "src_on_controller": "tiny.qcow2"}, check_mode=True)[0]
    assert result["changed"] is True and "needs_data" not in result
    result, failed = run_module(ImageModule, {"name": "up", "src_on_controller": "tiny.qcow2",
                                              "path": str(sources / "tiny.qcow2")})
    assert not failed and result["image"]["source"] == "controller file tiny.qcow2"
    result, failed = run_module(ImageModule, {"name": "up", "src_on_controller": "tiny.qcow2"})
    assert not failed and result["changed"] is False and "needs_data" not in result
