import multiprocessing
import os

import netaddr
import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._ipam import (
    FreeList,
    Ipam,
    NetworkStore,
    PoolExhaustedError,
    SaveIpam,
    build_subnet,
    parse_hosts,
    render_hosts,
)

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:
    st = None


def ip(n):
    return str(netaddr.IPAddress(n))


# --- subnets ------------------------------------------------------------------

def test_default_subnet_takes_first_host_as_gateway_and_pools_the_rest():
    s = build_subnet("s1", "net1", "10.0.0.0/24")
    assert s.gateway == "10.0.0.1"
    assert s.pools == (("10.0.0.2", "10.0.0.254"),)
    assert s.enable_dhcp and s.id


def test_gateway_in_the_middle_splits_the_default_pool():
    s = build_subnet("s1", "net1", "10.0.0.0/28", gateway="10.0.0.7")
    assert s.pools == (("10.0.0.1", "10.0.0.6"), ("10.0.0.8", "10.0.0.14"))


def test_no_gateway_pools_every_host():
    s = build_subnet("s1", "net1", "10.0.0.0/29", gateway=None)
    assert s.gateway is None and s.pools == (("10.0.0.1", "10.0.0.6"),)


def test_subnet_ids_are_derived_from_names():
    assert build_subnet("s1", "net1", "10.0.0.0/24").id == build_subnet("s1", "net1", "10.9.0.0/24").id
    assert build_subnet("s1", "net1", "10.0.0.0/24").id != build_subnet("s1", "net2", "10.0.0.0/24").id


@pytest.mark.parametrize("kwargs, message", [
    (dict(cidr="10.0.0.1/24"), "host bits set; did you mean 10.0.0.0/24"),
    (dict(cidr="banana"), "not a CIDR"),
    (dict(cidr="fd00::/64"), "only IPv4"),
    (dict(cidr="10.0.0.0/30"), "too small"),
    (dict(cidr="10.0.0.0/24", gateway="10.0.1.1"), "gateway 10.0.1.1 is outside the subnet"),
    (dict(cidr="10.0.0.0/24", gateway="10.0.0.255"), "broadcast address"),
    (dict(cidr="10.0.0.0/24", gateway="10.0.0.0"), "network address"),
    (dict(cidr="10.0.0.0/24", pools=[{"start": "10.0.1.10", "end": "10.0.1.20"}]), "outside the host addresses"),
    (dict(cidr="10.0.0.0/24", pools=[{"start": "10.0.0.0", "end": "10.0.0.20"}]), "outside the host addresses"),
    (dict(cidr="10.0.0.0/24", pools=[{"start": "10.0.0.20", "end": "10.0.0.10"}]), "is after end"),
    (dict(cidr="10.0.0.0/24", pools=[{"start": "10.0.0.1", "end": "10.0.0.10"}]), "contains the gateway"),
    (dict(cidr="10.0.0.0/24", pools=[{"start": "10.0.0.10", "end": "10.0.0.20"},
                                     {"start": "10.0.0.15", "end": "10.0.0.30"}]), "overlap"),
    (dict(cidr="10.0.0.0/24", pools=[{"end": "10.0.0.20"}]), "give start and end"),
    (dict(cidr="10.0.0.0/24", dns_servers=["nope"]), "dns_servers[0]"),
    (dict(cidr="10.0.0.0/24", host_routes=[{"destination": "10.1.0.0/16"}]), "give destination and nexthop"),
    (dict(cidr="10.0.0.0/24", host_routes=[{"destination": "10.1.0.1/16", "nexthop": "10.0.0.9"}]), "host bits"),
])
def test_bad_subnets_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_subnet("s1", "net1", **kwargs)


def test_overlapping_subnets_in_one_network_are_refused_and_nothing_changes():
    ipam = Ipam("net1", [build_subnet("a", "net1", "10.0.0.0/24")])
    with pytest.raises(ValidationError, match="overlaps subnet a"):
        ipam.put_subnet(build_subnet("b", "net1", "10.0.0.128/25"))
    assert [s.name for s in ipam.subnets] == ["a"]


def test_cidr_of_a_subnet_cannot_change():
    ipam = Ipam("net1", [build_subnet("a", "net1", "10.0.0.0/24")])
    with pytest.raises(ValidationError, match="cidr cannot change"):
        ipam.put_subnet(build_subnet("a", "net1", "10.0.1.0/24"))


# --- the free list ------------------------------------------------------------

def test_free_list_skips_used_addresses_and_merges_released_ones():
    fl = FreeList([(10, 20)], used=[10, 11, 13])
    assert len(fl) == 8
    assert fl.take_lowest() == 12
    assert fl.take_lowest() == 14
    assert fl.take(18) and not fl.take(18)
    assert 18 not in fl and 19 in fl
    fl.release(18)
    fl.release(12)
    fl.release(13)
    assert len(fl) == 8
    assert fl.take_lowest() == 12
    assert fl.take_lowest() == 13


def test_free_list_ignores_addresses_outside_its_pools():
    fl = FreeList([(10, 12)])
    fl.release(5)
    assert not fl.take(5)
    assert [fl.take_lowest() for attempt in range(4)] == [10, 11, 12, None]


# --- ports --------------------------------------------------------------------

def network(*subnets):
    subnets = subnets or (build_subnet("s1", "net1", "10.0.0.0/29"),)
    return Ipam("net1", subnets)


def test_ports_get_the_lowest_free_address_stable_ids_and_macs():
    ipam = network()
    a = ipam.plan_port("a", device_owner="compute")
    b = ipam.plan_port("b", device_owner="compute")
    assert (a.ips(), b.ips()) == (["10.0.0.2"], ["10.0.0.3"])
    assert a.mac.startswith("fa:16:3e:") and a.mac != b.mac
    assert Ipam("net1", network().subnets).plan_port("a").id == a.id


def test_a_port_keeps_its_address_and_mac_when_planned_again():
    ipam = network()
    a = ipam.plan_port("a")
    assert ipam.plan_port("a").fixed_ips == a.fixed_ips
    assert ipam.plan_port("a", fixed_ips=[{"subnet": "s1"}]).fixed_ips == a.fixed_ips
    assert ipam.plan_port("a").mac == a.mac


def test_a_requested_address_is_taken_and_refused_to_others():
    ipam = network()
    assert ipam.plan_port("a", fixed_ips=[{"ip": "10.0.0.5"}]).fixed_ips == [{"subnet": "s1", "ip": "10.0.0.5"}]
    with pytest.raises(ValidationError, match="already held by port a"):
        ipam.plan_port("b", fixed_ips=[{"subnet": "s1", "ip": "10.0.0.5"}])
    assert "b" not in ipam.ports
    assert ipam.plan_port("c").ips() == ["10.0.0.2"]


def test_changing_a_fixed_ip_releases_the_old_one():
    ipam = network()
    ipam.plan_port("a")
    assert ipam.plan_port("a", fixed_ips=[{"ip": "10.0.0.6"}]).ips() == ["10.0.0.6"]
    assert ipam.plan_port("b").ips() == ["10.0.0.2"]


def test_the_gateway_is_only_for_a_router_interface():
    ipam = network()
    with pytest.raises(ValidationError, match="gateway of subnet s1"):
        ipam.plan_port("a", fixed_ips=[{"ip": "10.0.0.1"}])
    port = ipam.plan_port("r", fixed_ips=[{"ip": "10.0.0.1"}], device_owner="network:router_interface")
    assert port.ips() == ["10.0.0.1"]
    ipam.remove_port("r")
    assert [ipam.plan_port("p%d" % i).ips()[0] for i in range(5)] == [ip(0x0A000002 + i) for i in range(5)]


def test_exhausted_pool_is_a_clear_error_and_changes_nothing():
    ipam = network()  # a /29: .2 to .6
    for i in range(5):
        ipam.plan_port("p%d" % i)
    before = {n: p.fixed_ips for n, p in ipam.ports.items()}
    with pytest.raises(PoolExhaustedError, match="no free address left"):
        ipam.plan_port("p5")
    assert {n: p.fixed_ips for n, p in ipam.ports.items()} == before
    ipam.remove_port("p2")
    assert ipam.plan_port("p5").ips() == ["10.0.0.4"]


def test_a_failed_multi_address_port_gives_back_what_it_took():
    ipam = network(build_subnet("s1", "net1", "10.0.0.0/29"), build_subnet("s2", "net1", "10.0.1.0/29"))
    ipam.plan_port("x", fixed_ips=[{"ip": "10.0.1.2"}])
    with pytest.raises(ValidationError, match="already held"):
        ipam.plan_port("y", fixed_ips=[{"subnet": "s1"}, {"ip": "10.0.1.2"}])
    assert ipam.plan_port("z").ips() == ["10.0.0.2"]


@pytest.mark.parametrize("fixed_ips, message", [
    ([{"subnet": "nope"}], "has no subnet nope"),
    ([{"ip": "192.168.0.5"}], "in no subnet of network net1"),
    ([{"subnet": "s1", "ip": "10.9.0.5"}], "outside subnet s1"),
    ([{"subnet": "s1", "ip": "10.0.0.7"}], "broadcast"),
    ([{}], "give subnet and/or ip"),
    ([{"ip": "10.0.0.3"}, {"ip": "10.0.0.3"}], "given twice"),
])
def test_bad_fixed_ips(fixed_ips, message):
    ipam = network()
    with pytest.raises(ValidationError, match=message):
        ipam.plan_port("a", fixed_ips=fixed_ips)
    assert ipam.ports == {}


def test_macs_are_unique_and_cannot_change():
    ipam = network()
    ipam.plan_port("a", mac="fa:16:3e:00:00:01")
    with pytest.raises(ValidationError, match="already used by another port"):
        ipam.plan_port("b", mac="FA-16-3E-00-00-01")
    with pytest.raises(ValidationError, match="mac cannot change"):
        ipam.plan_port("a", mac="fa:16:3e:00:00:02")


def test_a_network_without_subnets_cannot_hold_ports():
    with pytest.raises(ValidationError, match="has no subnet"):
        Ipam("net1").plan_port("a")


def test_a_subnet_with_ports_cannot_go_but_its_dhcp_port_goes_with_it():
    ipam = network()
    ipam.plan_port("dhcp", device_owner="network:dhcp")
    ipam.plan_port("a", device_owner="compute")
    with pytest.raises(ValidationError, match="still has ports: a"):
        ipam.remove_subnet("s1")
    ipam.remove_port("a")
    ipam.remove_subnet("s1")
    assert ipam.ports == {} and ipam.subnets == []


def test_moving_the_gateway_onto_a_held_address_is_refused():
    ipam = network(build_subnet("s1", "net1", "10.0.0.0/24"))
    ipam.plan_port("a", fixed_ips=[{"ip": "10.0.0.9"}])
    with pytest.raises(ValidationError, match="gateway 10.0.0.9 is held by port a"):
        ipam.put_subnet(build_subnet("s1", "net1", "10.0.0.0/24", gateway="10.0.0.9"))


# --- the hosts file -----------------------------------------------------------

def test_hosts_file_is_the_record_and_feeds_dnsmasq():
    ipam = network()
    ipam.plan_port("dhcp", device_owner="network:dhcp")
    ipam.plan_port("web", device_owner="compute", hostname="web", security_groups=["sg"])
    text = render_hosts(ipam)
    dnsmasq_lines = [line for line in text.splitlines() if not line.startswith("#")]
    web = ipam.ports["web"]
    assert dnsmasq_lines == ["%s,10.0.0.3,web" % web.mac]
    back = {p.name: p for p in parse_hosts(text)}
    assert back["web"] == web and back["dhcp"] == ipam.ports["dhcp"]


def test_store_round_trip_and_atomic_files(tmp_path):
    store = NetworkStore(str(tmp_path / "net1"), "net1")
    with store.transaction():
        ipam = store.load()
        ipam.put_subnet(build_subnet("s1", "net1", "10.0.0.0/24"))
        ipam.plan_port("a")
        assert store.save(ipam)
        assert not store.save(ipam)
    again = store.load()
    assert [s.name for s in again.subnets] == ["s1"] and again.ports["a"].ips() == ["10.0.0.2"]
    assert sorted(os.listdir(str(tmp_path / "net1"))) == ["hosts", "ipam.lock", "subnets.json"]


# --- properties -----------------------------------------------------------------

if st is not None:
    ops = st.lists(st.one_of(st.tuples(st.just("alloc"), st.integers(0, 40)),
                             st.tuples(st.just("ask"), st.integers(0, 40), st.integers(0, 63)),
                             st.tuples(st.just("free"), st.integers(0, 40))), max_size=80)
    pools = st.lists(st.tuples(st.integers(1, 62), st.integers(0, 8)), min_size=1, max_size=4)

    @settings(max_examples=150, deadline=None)
    @given(ops=ops, pools=pools)
    def test_property_never_a_duplicate_and_always_inside_a_pool(ops, pools):
        # Disjoint pools in a /26 that avoid the gateway (.1).
        addresses, ranges = set(), []
        for start, length in pools:
            span = [a for a in range(max(start, 2), min(start + length, 62) + 1) if a not in addresses]
            if span and span == list(range(span[0], span[-1] + 1)):
                addresses.update(span)
                ranges.append({"start": "10.0.0.%d" % span[0], "end": "10.0.0.%d" % span[-1]})
        if not ranges:
            return
        try:
            subnet = build_subnet("s", "n", "10.0.0.0/26", pools=ranges)
        except ValidationError:
            return
        ipam = Ipam("n", [subnet])
        pool_set = netaddr.IPSet(subnet.ranges())
        for op in ops:
            name = "p%d" % op[1]
            try:
                if op[0] == "alloc":
                    ipam.plan_port(name)
                elif op[0] == "ask":
                    ipam.plan_port(name, fixed_ips=[{"ip": "10.0.0.%d" % op[2]}])
                else:
                    ipam.remove_port(name)
            except (ValidationError, PoolExhaustedError):
                pass
            held = [f["ip"] for p in ipam.ports.values() for f in p.fixed_ips]
            assert len(held) == len(set(held))
            auto = [f["ip"] for p in ipam.ports.values() for f in p.fixed_ips]
            assert all(netaddr.IPAddress(a) in subnet.net for a in auto)
            assert "10.0.0.1" not in held and "10.0.0.0" not in held and "10.0.0.63" not in held
            # Everything free in the list is in a pool and held by nobody.
            fl = ipam.free_list(subnet)
            assert all(a in pool_set for a in (netaddr.IPAddress(x) for x in range(0x0A000000, 0x0A000040) if x in fl))
            assert not any(int(netaddr.IPAddress(h)) in fl for h in held)

    @settings(max_examples=100, deadline=None)
    @given(count=st.integers(1, 70))
    def test_property_automatic_addresses_come_from_the_pools(count):
        subnet = build_subnet("s", "n", "10.0.0.0/26", pools=[{"start": "10.0.0.10", "end": "10.0.0.20"},
                                                              {"start": "10.0.0.40", "end": "10.0.0.45"}])
        ipam = Ipam("n", [subnet])
        got = []
        for i in range(count):
            try:
                got.append(ipam.plan_port("p%d" % i).ips()[0])
            except PoolExhaustedError:
                break
        assert len(got) == min(count, 17) == len(set(got))
        assert all(netaddr.IPAddress(a) in netaddr.IPSet(subnet.ranges()) for a in got)


# --- concurrency ------------------------------------------------------------------

def _allocate_in_child(directory, name, start, results):
    start.wait()
    store = NetworkStore(directory, "net1")
    with store.transaction():
        ipam = store.load()
        port = ipam.plan_port(name, device_owner="compute")
        store.save(ipam)
    results.put(port.ips()[0])


def test_fifty_processes_allocating_at_once_get_fifty_distinct_addresses(tmp_path):
    directory = str(tmp_path / "net1")
    store = NetworkStore(directory, "net1")
    with store.transaction():
        ipam = store.load()
        ipam.put_subnet(build_subnet("s1", "net1", "10.0.0.0/24"))
        store.save(ipam)
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    children = [ctx.Process(target=_allocate_in_child, args=(directory, "p%d" % i, start, results))
                for i in range(50)]
    for child in children:
        child.start()
    start.set()
    got = [results.get(timeout=60) for child in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert len(set(got)) == 50
    assert set(got) == {"10.0.0.%d" % i for i in range(2, 52)}
    assert sorted(store.load().ports) == sorted("p%d" % i for i in range(50))


def test_a_transaction_in_check_mode_creates_no_lock_or_directory(tmp_path):
    store = NetworkStore(str(tmp_path / "net1"), "net1", check_mode=True)
    with store.transaction():
        ipam = store.load()
    assert ipam.subnets == [] and not (tmp_path / "net1").exists()
    real = NetworkStore(str(tmp_path / "net1"), "net1")
    with real.transaction():
        pass
    assert (tmp_path / "net1" / "ipam.lock").exists()


def test_planning_on_a_copy_leaves_the_snapshot_alone():
    ipam = network(build_subnet("s1", "net1", "10.0.0.0/29"))
    ipam.plan_port("p1")
    snapshot = render_hosts(ipam)
    planned = ipam.copy()
    planned.plan_port("p1", fixed_ips=[{"ip": "10.0.0.5"}], hostname="h")
    planned.plan_port("p2")
    planned.remove_port("p2")
    assert render_hosts(ipam) == snapshot and ipam.ports["p1"].fixed_ips == [{"subnet": "s1", "ip": "10.0.0.2"}]
    assert planned.ports["p1"].fixed_ips == [{"subnet": "s1", "ip": "10.0.0.5"}]


class Gate:
    """A runner's gate: in check mode it records, for real it calls."""

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.planned = []

    def apply(self, description, func, *args):
        if self.check_mode:
            self.planned.append(description)
            return None
        return func(*args)


def test_saving_is_a_step_through_the_gate(tmp_path):
    store = NetworkStore(str(tmp_path / "net1"), "net1")
    ipam = network(build_subnet("s1", "net1", "10.0.0.0/29"))
    step = SaveIpam(store, ipam)
    assert step.describe() == "write the IPAM records of net1 in %s" % (tmp_path / "net1")
    gate = Gate(check_mode=True)
    step.apply(gate)
    assert gate.planned == [step.describe()] and not (tmp_path / "net1").exists()
    step.apply(Gate(check_mode=False))
    assert [s.name for s in store.load().subnets] == ["s1"]
    assert step == SaveIpam(store, store.load()) and step != SaveIpam(store, Ipam("net1"))


def test_the_api_derives_port_ids_as_the_port_module_does():
    """The API names a router's interface port by the id the port module gives it, with the same uuid5 namespace
    and the same parts (its host_port_id), without running a module."""
    import re
    import uuid
    from pathlib import Path

    from ansible_collections.nimbus.cloud.plugins.module_utils._ipam import ID_NAMESPACE, derive_id

    text = (Path(__file__).resolve().parents[4] / "api" / "nimbus_api" / "openstack" / "neutron_ports.py").read_text()
    namespace = re.search(r'_HOST_IDS = uuid\.UUID\("([0-9a-f-]+)"\)', text).group(1)
    assert uuid.UUID(namespace) == ID_NAMESPACE
    assert 'uuid.uuid5(_HOST_IDS, "/".join(("port", network, name)))' in text
    assert str(uuid.uuid5(uuid.UUID(namespace), "port/demo-net/router-r1")) == derive_id("port", "demo-net", "router-r1")
