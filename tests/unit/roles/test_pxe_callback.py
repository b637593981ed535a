"""The pxe role's callback service (roles/pxe/files/pxe_callback.py) on loopback: a job's token handed out once
to its node's address, a result taken once with it, and what others send refused with nothing written."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import importlib.util
import io
import json
import socket
import threading
import time
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[3] / "roles" / "pxe" / "files" / "pxe_callback.py"
TOKEN = "tok-4f1c9a77d2e0b6"
MAC = "52:54:00:be:00:10"


def load():
    spec = importlib.util.spec_from_file_location("pxe_callback", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


service = load()


def job(node="bm-1", address="127.0.0.1", mode="deploy", **extra):
    return dict({"node": node, "mode": mode, "address": address, "macs": [MAC], "token": TOKEN,
                 "created_at": service.now(),
                 "token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                 "image_url": "http://10.0.50.1:8088/images/5d2f9e67.raw", "image_size": "16777216",
                 "image_sha256": "a" * 64, "disk": ""}, **extra)


@pytest.fixture
def served(tmp_path):
    """The service on 127.0.0.1 with an empty jobs directory (and its lock) and reports directory; its log lines
    are collected."""
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir(mode=0o750)
    (jobs_dir / ".lock").touch()
    reports = tmp_path / "reports"
    reports.mkdir(mode=0o700)
    log = io.StringIO()
    server = service.Server(("127.0.0.1", 0), service.Jobs(str(jobs_dir), str(reports)), log=log)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Served:
        port = server.server_address[1]
        service_server = server
        directory = jobs_dir
        lines = log

        def add(self, data):
            (jobs_dir / (data["node"] + ".json")).write_text(json.dumps(data))

        def read(self, node, suffix=".json"):
            """A job (suffix .json) or one of the service's reports of it."""
            path = (jobs_dir if suffix == ".json" else reports) / (node + suffix)
            return json.loads(path.read_text()) if path.exists() else None

        def post(self, path, body, headers=None, source="127.0.0.1", method="POST"):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=(source, 0))
            with contextlib.closing(conn):
                conn.request(method, path, body=body.encode() if isinstance(body, str) else body,
                             headers=dict({"Content-Type": "application/x-www-form-urlencoded"}, **(headers or {})))
                response = conn.getresponse()
                return response.status, response.read().decode()

    yield Served()
    server.shutdown()
    server.server_close()


def answer_fields(text):
    return dict(line.split("=", 1) for line in text.splitlines())


def test_the_node_gets_its_job_and_token_once(served):
    served.add(job())
    status, text = served.post("/v1/lookup", "macs=" + MAC.upper())
    assert status == 200, text
    assert answer_fields(text) == {"node": "bm-1", "mode": "deploy", "image_url": job()["image_url"],
                                   "image_size": "16777216", "image_sha256": "a" * 64, "disk": "", "next_step": "",
                                   "token": TOKEN}
    # The job is root's and stays as it is; the service notes, in its own directory, that the token is out.
    assert served.read("bm-1") == job()
    issued = served.read("bm-1", ".issued.json")
    assert issued["token_sha256"] == job()["token_sha256"] and issued["issued_at"] and TOKEN not in str(issued)
    assert served.post("/v1/lookup", "macs=" + MAC)[0] == 409
    assert TOKEN not in served.lines.getvalue()


def test_a_new_job_of_the_node_is_handed_out_despite_the_last_ones_mark(served):
    served.add(job())
    assert served.post("/v1/lookup", "macs=" + MAC)[0] == 200
    other = "tok-7a0e55c3b91d4f"
    served.add(job(token=other, token_sha256=hashlib.sha256(other.encode()).hexdigest()))
    status, text = served.post("/v1/lookup", "macs=" + MAC)
    assert status == 200 and answer_fields(text)["token"] == other


def test_no_lookup_is_answered_before_the_module_made_the_jobs_lock(served):
    (served.directory / ".lock").unlink()
    assert served.post("/v1/lookup", "macs=" + MAC)[0] == 404


@pytest.mark.parametrize("body, status", [
    ("macs=52:54:00:be:00:99", 404),         # not the node's MAC
    ("macs=", 400),
    ("macs=52:54:00:be:00:10;reboot", 400),
    ("macs=%s&macs=%s" % (MAC, MAC), 400),  # a field twice
    ("\xff\xfe", 400),
])
def test_a_lookup_that_is_not_the_nodes_gets_nothing(served, body, status):
    served.add(job())
    assert served.post("/v1/lookup", body)[0] == status
    assert served.read("bm-1")["token"] == TOKEN


def test_another_address_gets_no_token_even_with_the_nodes_mac(served):
    served.add(job(address="127.0.0.2"))
    assert served.post("/v1/lookup", "macs=" + MAC, source="127.0.0.1")[0] == 404
    assert served.read("bm-1")["token"] == TOKEN
    assert served.post("/v1/lookup", "macs=" + MAC, source="127.0.0.2")[0] == 200


def test_a_job_value_the_ramdisk_could_misread_is_never_handed_over(served):
    served.add(job(image_url="http://10.0.50.1/x\ntoken=forged"))
    status, text = served.post("/v1/lookup", "macs=" + MAC)
    assert status == 500 and TOKEN not in text
    assert served.read("bm-1")["token"] == TOKEN


def test_the_result_is_taken_once_with_the_token(served):
    served.add(job())
    served.post("/v1/lookup", "macs=" + MAC)
    body = "status=ok&sha256=%s&uptime=41.52&marks=lease:12.10,job:12.31,done:40.9&message=wrote 16777216 bytes" % (
        "b" * 64)
    assert served.post("/v1/callback", body)[0] == 400  # no token
    assert served.post("/v1/callback", body + "&token=guess")[0] == 400  # not a token at all
    assert served.post("/v1/callback", body + "&token=" + "g" * 43)[0] == 403
    assert served.read("bm-1", ".result.json") is None
    assert served.post("/v1/callback", body + "&token=" + TOKEN)[0] == 200
    result = served.read("bm-1", ".result.json")
    assert (result["status"], result["sha256"], result["uptime"], result["message"]) == \
        ("ok", "b" * 64, 41.52, "wrote 16777216 bytes")
    assert result["marks"] == {"lease": 12.1, "job": 12.31, "done": 40.9}
    assert served.post("/v1/callback", body + "&token=" + TOKEN)[0] == 409
    assert TOKEN not in served.lines.getvalue()


def test_no_result_before_the_token_was_handed_out(served):
    served.add(job())
    assert served.post("/v1/callback", "status=ok&sha256=%s&token=%s" % ("b" * 64, TOKEN))[0] == 404
    assert served.read("bm-1", ".result.json") is None


@pytest.mark.parametrize("body", [
    "status=done",
    "status=ok",                                   # a deploy names what it wrote
    "status=ok&sha256=xyz",
    "status=failed&message=line%0Aforged",
    "status=failed&uptime=1e9",
    "status=failed&marks=lease:1,job",
    "status=failed&marks=lease:1;reboot",
    "status=failed&marks=" + ",".join(["s:1"] * 9),
])
def test_a_malformed_result_is_refused_and_nothing_written(served, body):
    served.add(job())
    served.post("/v1/lookup", "macs=" + MAC)
    assert served.post("/v1/callback", body + "&token=" + TOKEN)[0] == 400
    assert served.read("bm-1", ".result.json") is None


def test_a_cleaning_reports_without_a_sha256(served):
    served.add(job(mode="clean"))
    served.post("/v1/lookup", "macs=" + MAC)
    assert served.post("/v1/callback", "status=ok&message=wiped&token=" + TOKEN)[0] == 200
    assert served.read("bm-1", ".result.json")["sha256"] is None


def test_other_requests_are_refused(served):
    served.add(job())
    assert served.post("/v1/lookup", "macs=" + MAC, method="GET")[0] == 405
    assert served.post("/v1/nodes", "macs=" + MAC)[0] == 404
    assert served.post("/v1/lookup", "macs=" + MAC + "&pad=" + "x" * 5000)[0] == 413
    assert served.read("bm-1")["token"] == TOKEN


def test_a_token_or_a_length_that_is_not_one_gets_an_answer_and_the_service_goes_on(served):
    served.add(job())
    served.post("/v1/lookup", "macs=" + MAC)
    assert served.post("/v1/callback", "status=ok&sha256=%s&token=%%C3%%A9" % ("b" * 64))[0] == 400
    # "²" is a digit to str.isdigit(), not to int().
    assert served.post("/v1/lookup", "macs=" + MAC, headers={"Content-Length": "\u00b2"})[0] == 411
    assert served.post("/v1/lookup", "macs=" + MAC, headers={"Content-Length": "9" * 5000})[0] == 411
    assert served.post("/v1/callback", "status=failed&message=x&token=" + TOKEN)[0] == 200


def _raw_request(port, data):
    with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=10)) as conn:
        conn.sendall(data)
        return conn.recv(4096)


def test_the_log_shows_a_clients_control_characters_as_escapes(served):
    answer = _raw_request(served.port, b"POST /v1/\x1b[2J\x07 HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 404")
    logged = served.lines.getvalue()
    assert "\\x1b[2J\\x07" in logged and "\x1b" not in logged and "\x07" not in logged


def test_a_silent_client_is_dropped_and_clients_beyond_the_limit_are_closed(served, monkeypatch):
    served.add(job())
    monkeypatch.setattr(service.Handler, "timeout", 1)
    served.service_server.slots = threading.BoundedSemaphore(1)
    with contextlib.closing(socket.create_connection(("127.0.0.1", served.port), timeout=10)) as silent:
        time.sleep(0.2)  # the silent client holds the one slot
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
            served.post("/v1/lookup", "macs=" + MAC)
        # It is dropped after the timeout, which frees its slot.
        started = time.monotonic()
        assert silent.recv(4096) == b""
        assert time.monotonic() - started < 5
    for _attempt in range(50):
        with contextlib.suppress(http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            assert served.post("/v1/lookup", "macs=" + MAC)[0] == 200
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the service took no client after the silent one")


@pytest.mark.parametrize("created_at", ["2020-01-01T00:00:00Z", "yesterday", None])
def test_a_stale_job_is_never_handed_out(served, created_at):
    """A job a killed run left behind (or one without its making's time) stays where it is, token and all."""
    served.add(job(created_at=created_at))
    status, text = served.post("/v1/lookup", "macs=" + MAC)
    assert status == 410 and "older than 7200 s" in text
    assert served.read("bm-1")["token"] == TOKEN
