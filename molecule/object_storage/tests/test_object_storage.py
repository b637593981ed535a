"""Swift on a proxy and three storage hosts, with users' tokens from the API service.

The API runs on this machine at the scenario network's gateway (tests/support/embedded_api.py), where the
proxy's keystonemiddleware validates tokens with the service user that ``nimbus-api service`` made; the
object-store endpoint is in its catalog. python-swiftclient stores and reads objects with a project's token.

The stories run in this file's order, each on what the previous ones left: objects and a large object (SLO),
refusals, a replaced disk refilled by the replicators, a storage host stopped while every object still reads,
a fourth host (from the bare base image) brought in by playbooks/swift_storage_add.yml over several runs, a host
drained out by playbooks/swift_storage_drain.yml, then ring changes refused (a host down, too many replicas)
with no host's ring and no builder touched. After every playbook run every object reads back and every Swift
host holds the builder's rings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import testinfra
import yaml
from swiftclient import client as swift
from swiftclient.exceptions import ClientException

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3])
sys.path[:0] = [str(REPO / "tests" / "support")]
from embedded_api import EmbeddedAPI  # noqa: E402

PROXY = "nimbus-os-proxy"
STORAGE = ["nimbus-os-1", "nimbus-os-2", "nimbus-os-3"]
NEW_HOST = "nimbus-os-4"
HOSTS = [PROXY] + STORAGE + [NEW_HOST]
PASSWORDS = {"admin": "admin-os-pass-6Rq", "demo": "demo-os-pass-3Kd", "other": "other-os-pass-8Lw"}
# molecule.yml's secrets: they must never show in a run's output or a host's logs.
SERVICE_PASSWORD = "swift-service-secret-M3v"
HASH_SUFFIX = "os-hash-suffix-Tq8r2"
RINGS = ["account", "container", "object"]
BUILDERS = "/var/lib/nimbus/swift-rings"
CONTAINER = "stories"
# Small objects, some with names that are only data to Swift (a template, a quoted slash, unicode).
OBJECTS = {name: hashlib.sha256(name.encode()).digest() * 32 for name in
           ["plain-%02d" % n for n in range(30)] + ["{{ lookup('pipe', 'id') }}", "ünïcode name", "a%2Fb"]}
SEGMENT = 1024 * 1024
LARGE = b"".join(hashlib.sha512(b"%d" % n).digest() * (SEGMENT // 64) for n in range(3))


def host(name):
    return testinfra.get_host("podman://" + name)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """The API at the gateway the proxy reaches it through (molecule.yml: port 5000), the demo and other
    projects, and Swift's service user and endpoint made as the swift role makes them on an API host."""
    gateway = host(PROXY).check_output("ip -4 route show default").split()[2]
    proxy_ip = host(PROXY).check_output("hostname -I").split()[0]
    with EmbeddedAPI(tmp_path_factory.mktemp("api"), host=gateway, port=5000) as api:
        api.manage("migrate")
        api.manage("bootstrap", "--password-stdin", "--public-url", api.url, stdin=PASSWORDS["admin"] + "\n")
        for name in ("demo", "other"):
            api.manage("demo", "--project", name, "--user", name, stdin=PASSWORDS[name] + "\n")
        made = json.loads(api.manage(
            "service", "--name", "swift", "--type", "object-store", "--description", "object storage",
            "--url", "public=http://%s:8888/v1/AUTH_$(project_id)s" % proxy_ip, "--user", "swift",
            "--password-stdin", stdin=SERVICE_PASSWORD + "\n"))
        assert made["changed"] is True
        api.serve()
        yield api


def token(cloud, name):
    """A project-scoped token and the object-store URL its catalog gives."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"name": "Default"}, "password": PASSWORDS[name]}}},
        "scope": {"project": {"name": name, "domain": {"name": "Default"}}}}}
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=body, timeout=30)
    assert r.status_code == 201, r.text
    project = r.json()["token"]["project"]["id"]
    [store] = [s for s in r.json()["token"]["catalog"] if s["type"] == "object-store"]
    [url] = [e["url"] for e in store["endpoints"] if e["interface"] == "public"]
    assert url.endswith("/v1/AUTH_" + project)
    return r.headers["X-Subject-Token"], url


# The demo project's connection, for helpers that check the objects between runs.
DEMO = []


@pytest.fixture(scope="module")
def demo(cloud):
    tok, url = token(cloud, "demo")
    DEMO[:] = [swift.Connection(preauthurl=url, preauthtoken=tok, retries=0, timeout=30)]
    return DEMO[0]


def read_all(conn):
    """Every object and the large one read back whole."""
    for name, body in OBJECTS.items():
        assert conn.get_object(CONTAINER, name)[1] == body, name
    assert conn.get_object(CONTAINER, "large")[1] == LARGE


def ring_sums(hosts=tuple(HOSTS)):
    return {name: host(name).check_output("cd /etc/swift && sha256sum %s" % " ".join(
        "%s.ring.gz" % r for r in RINGS)) for name in hosts}


def builder_sums():
    return host(PROXY).check_output("cd %s && sha256sum *.builder *.ring.gz" % BUILDERS)


def assert_one_ring_everywhere(hosts=tuple(HOSTS)):
    """Every Swift host holds the builder's rings, byte for byte."""
    rings = " ".join("%s.ring.gz" % r for r in RINGS)
    builder = host(PROXY).check_output("cd %s && sha256sum %s" % (BUILDERS, rings))
    for name, sums in ring_sums(hosts).items():
        assert sums == builder, name


def ring_devices(ring="object"):
    """The ring's devices, as the builder host's swift_ring_info reads them."""
    out = host(PROXY).check_output(
        "python3 -c 'import json, sys; from swift.common.ring import RingBuilder; "
        "b = RingBuilder.load(sys.argv[1]); "
        "print(json.dumps([dict(ip=d[\"ip\"], device=d[\"device\"], weight=d[\"weight\"], parts=d[\"parts\"]) "
        "for d in b.devs if d]))' %s/%s.builder" % (BUILDERS, ring))
    return json.loads(out)


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """An inventory source that puts the fourth host in the swift_storage group (beside Molecule's)."""
    path = tmp_path_factory.mktemp("inventory") / "joined.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"swift_storage": {"hosts": {NEW_HOST: {}}}}}}))
    return path


def playbook(name, *args, inventories=(), ok=True):
    """ansible-playbook on the scenario's hosts, as an operator runs it; its output."""
    command = [str(Path(sys.executable).parent / "ansible-playbook"),
               "-i", str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)]
    for extra in inventories:
        command += ["-i", str(extra)]
    proc = subprocess.run(command + [str(REPO / "playbooks" / name), *args], capture_output=True, text=True,
                          timeout=1200, check=False)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, out[-6000:]
    for secret in (SERVICE_PASSWORD, HASH_SUFFIX):
        assert secret not in out
    return out


def test_a_project_stores_and_reads_objects_with_a_token_from_the_api(demo):
    demo.put_container(CONTAINER)
    for name, body in OBJECTS.items():
        demo.put_object(CONTAINER, name, body)
    listed = [o["name"] for o in demo.get_container(CONTAINER, full_listing=True)[1]]
    assert sorted(listed) == sorted(OBJECTS)
    for name, body in OBJECTS.items():
        headers, got = demo.get_object(CONTAINER, name)
        assert got == body
        assert headers["etag"] == hashlib.md5(body).hexdigest()


def test_a_large_object_is_stored_in_segments_and_read_whole_through_slo(demo):
    demo.put_container(CONTAINER + "_segments")
    manifest = []
    for n in range(3):
        part = LARGE[n * SEGMENT:(n + 1) * SEGMENT]
        etag = demo.put_object(CONTAINER + "_segments", "large/%d" % n, part)
        manifest.append({"path": "/%s_segments/large/%d" % (CONTAINER, n), "etag": etag, "size_bytes": len(part)})
    demo.put_object(CONTAINER, "large", json.dumps(manifest), query_string="multipart-manifest=put")
    headers, got = demo.get_object(CONTAINER, "large")
    assert got == LARGE
    assert headers["x-static-large-object"] == "True"
    assert int(headers["content-length"]) == len(LARGE)


def test_other_projects_forged_tokens_and_anonymous_requests_are_refused(cloud, demo):
    other_token, other_url = token(cloud, "other")
    demo_url = demo.url
    assert other_url != demo_url
    for tok, status in ((other_token, 403), ("f" * 64, 401)):
        with pytest.raises(ClientException) as e:
            swift.get_object(demo_url, tok, CONTAINER, "plain-00")
        assert e.value.http_status == status, tok
    assert httpx.get(demo_url + "/" + CONTAINER + "/plain-00", timeout=30).status_code == 401
    # The other project's account is its own, and empty.
    assert swift.get_account(other_url, other_token)[1] == []


def test_a_replaced_disk_gets_its_replicas_back_from_the_other_hosts(demo):
    """nimbus-os-2's d2 is wiped (a new, empty disk); playbooks/swift_disk_replace.yml has the other hosts'
    replicators push back every object replica whose partition the ring puts on it."""
    names = json.dumps([CONTAINER, list(OBJECTS)])
    account = demo.url.rsplit("/", 1)[1]
    # Where the object ring puts each object (Swift's own code on the proxy, with the scenario's hash suffix).
    placed = json.loads(host(PROXY).check_output(
        "python3 -c 'import json, sys\n"
        "from swift.common.ring import Ring\n"
        "from swift.common.utils import hash_path, validate_hash_conf\n"
        "validate_hash_conf()\n"
        "container, names = json.loads(sys.argv[2])\n"
        "ring = Ring(\"/etc/swift\", ring_name=\"object\")\n"
        "out = []\n"
        "for name in names:\n"
        "    part, nodes = ring.get_nodes(sys.argv[1], container, name)\n"
        "    out.append([part, hash_path(sys.argv[1], container, name), [(n[\"ip\"], n[\"device\"]) for n in nodes]])\n"
        "print(json.dumps(out))' %s %s" % (account, _quote(names))))
    address = host("nimbus-os-2").check_output("hostname -I").split()[0]
    on_d2 = ["/srv/node/d2/objects/%d/%s/%s" % (part, digest[-3:], digest)
             for part, digest, nodes in placed if [address, "d2"] in [list(n) for n in nodes]]
    assert on_d2, "no object has a replica on nimbus-os-2:d2"
    disk = host("nimbus-os-2")
    disk.check_output("rm -rf /srv/node/d2 && mkdir /srv/node/d2")
    playbook("swift_disk_replace.yml", "-e", "swift_host=nimbus-os-2", "-e", "swift_device=d2")
    missing = [path for path in on_d2 if disk.run("ls %s/*.data" % path).rc != 0]
    assert missing == []
    assert disk.file("/srv/node/d2").user == "swift"
    read_all(demo)


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_every_object_reads_and_writes_go_on_with_a_storage_host_stopped(demo):
    down = host("nimbus-os-3")
    servers = "swift-account swift-container swift-object"
    down.check_output("systemctl stop %s" % servers)
    try:
        read_all(demo)
        demo.put_object(CONTAINER, "written-while-down", b"handoff")
        assert demo.get_object(CONTAINER, "written-while-down")[1] == b"handoff"
    finally:
        down.check_output("systemctl start %s" % servers)


def test_a_fourth_host_joins_the_rings_over_several_runs_with_every_object_intact(demo, joined):
    """nimbus-os-4 starts from the bare base image: the first run installs Swift there, and its device's
    weight goes 50, then 100 (swift_weight_step=50); the runs after that let Swift balance further until one
    changes nothing and says so."""
    for weight in (50.0, 100.0):
        out = playbook("swift_storage_add.yml", "-e", "swift_weight_step=50", inventories=[joined])
        new = [d for d in ring_devices() if d["device"] == "d1" and d["ip"] == _address(NEW_HOST)]
        assert [d["weight"] for d in new] == [weight]
        assert new[0]["parts"] > 0
        assert "Run this playbook again" in out
        assert_one_ring_everywhere()
        read_all(demo)
    settle_until_nothing_is_left("swift_storage_add.yml", "-e", "swift_weight_step=50", inventories=[joined])


def settle_until_nothing_is_left(name, *args, inventories=(), runs=4):
    """Runs the playbook until it says nothing is left, objects intact after each; that run changed nothing."""
    for _run in range(runs):
        out = playbook(name, *args, inventories=inventories)
        assert_one_ring_everywhere()
        read_all(DEMO[0])
        if "nothing is left to do" in out:
            assert "changed=0" in out and not re.search(r"changed=[1-9]", out), out[-3000:]
            return
    raise AssertionError("%s still had work after %d runs: %s" % (name, runs, out[-3000:]))


def _address(name):
    return host(name).check_output("hostname -I").split()[0]


def test_a_host_drains_out_of_the_rings_over_several_runs_with_every_object_intact(demo, joined):
    """nimbus-os-1's device goes 100 → 50 → 0; the run after its partitions have moved takes it out."""
    drained = _address("nimbus-os-1")
    seen = []
    for _run in range(4):
        playbook("swift_storage_drain.yml", "-e", "swift_drain_host=nimbus-os-1", "-e", "swift_weight_step=50",
                 inventories=[joined])
        left = [d for d in ring_devices() if d["ip"] == drained]
        seen.append([d["weight"] for d in left])
        assert_one_ring_everywhere()
        read_all(demo)
        if not left:
            break
    assert seen[:2] == [[50.0], [0.0]] and seen[-1] == [], seen
    for ring in RINGS:
        assert drained not in {d["ip"] for d in ring_devices(ring)}
    settle_until_nothing_is_left("swift_storage_drain.yml", "-e", "swift_drain_host=nimbus-os-1",
                                 "-e", "swift_weight_step=50", inventories=[joined])


def test_a_ring_change_is_refused_while_a_swift_host_is_down_and_no_host_changes(demo, joined):
    before_rings, before_builders = ring_sums(), builder_sums()
    down = host("nimbus-os-3")
    # sshd and its sessions (the controller's persistent connections) end: Ansible cannot reach the host.
    down.check_output("systemctl stop ssh.service; systemctl stop ssh.socket 2>/dev/null; pkill -x sshd; true")
    try:
        out = playbook("swift_storage_add.yml", "-e", "swift_device_weight=80", inventories=[joined], ok=False)
        assert "nimbus-os-3 are down or not in this run" in out
    finally:
        down.check_output("systemctl start ssh.service")
    assert ring_sums() == before_rings
    assert builder_sums() == before_builders
    read_all(demo)


def test_more_replicas_than_zones_is_refused_and_nothing_changes(demo, joined):
    before_rings, before_builders = ring_sums(), builder_sums()
    out = playbook("swift_storage_add.yml", "-e", "swift_replicas=9", inventories=[joined], ok=False)
    assert "replicas" in out
    assert ring_sums() == before_rings
    assert builder_sums() == before_builders


def test_the_servers_run_and_no_secret_is_in_a_log(cloud):
    for name in STORAGE + [NEW_HOST]:
        for unit in ("swift-account", "swift-container", "swift-object", "swift-object-replicator", "rsync"):
            assert host(name).service(unit).is_running, (name, unit)
    proxy = host(PROXY)
    assert proxy.service("swift-proxy").is_running
    assert proxy.service("memcached").is_running
    assert proxy.file("/etc/swift/proxy-server.conf").mode == 0o640
    assert proxy.file("/etc/swift/proxy-server.conf").group == "swift"
    for name in HOSTS:
        for secret in (SERVICE_PASSWORD, HASH_SUFFIX):
            found = host(name).run("grep -rlF -- %s /var/log /root /tmp 2>/dev/null" % secret).stdout.split()
            assert found == [], (name, found)
    assert SERVICE_PASSWORD not in cloud.log.read_text()
