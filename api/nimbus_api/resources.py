"""Resource views: a project's instances, networks, volumes and images, read from the cloud's hosts
through the collection's ``_info`` modules (ansible-runner, module mode) and cached briefly.

One read serves every project: the modules run without a project filter and the view keeps the items
whose ``project`` is the caller's project id (names repeat across domains, ids do not). A kind whose module
the collection does not have yet is an empty list marked ``available: false``; it fills in once the module
exists, with no change here.
A host that fails or is unreachable is reported in ``errors`` next to what the others returned.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ansible_runner
import yaml

from nimbus_api.settings import ansible_environment, collections_path


@dataclass(frozen=True)
class View:
    module: str
    hosts: str  # the inventory pattern of the hosts that know this kind
    key: str  # the list in the module's result
    # The resources (as operations name them) whose jobs change what this kind shows, directly or as a side
    # effect (a server's delete removes its ports and detaches its volumes): a read that began before the last
    # such job ended is read again, whatever its age.
    changed_by: tuple[str, ...]
    # Ad-hoc module arguments are templated per host, so the inventory can choose, e.g., the libvirt URI.
    args: str = ""
    # Every project's (the hypervisors' image caches): not filtered by project.
    public: bool = False
    # Defined by name on every host that uses it, with no id of its own: one item per name.
    one_per_name: bool = False

    @property
    def source(self) -> tuple[str, str, str]:
        """What one run reads: kinds of the same module, hosts and arguments share it (one run of volume_info
        gives the volumes, snapshots, backups and volume types)."""
        return (self.module, self.hosts, self.args)


_NETWORKING = ("network", "subnet", "router", "floating_ip", "port", "security_group", "server")
_STORAGE = ("volume", "snapshot", "backup", "server")
VIEWS = {
    "instances": View("instance_info", "compute", "instances", ("server", "volume"),
                      "uri={{ nimbus_libvirt_uri | default('qemu:///system') }}"),
    "networks": View("network_info", "network:compute", "networks", ("network", "subnet", "router")),
    # The storage hosts hold the volumes (their records list the attachments).
    "volumes": View("volume_info", "storage", "volumes", _STORAGE),
    "volume_snapshots": View("volume_info", "storage", "snapshots", _STORAGE),
    "volume_backups": View("volume_info", "storage", "backups", _STORAGE),
    "volume_types": View("volume_info", "storage", "volume_types", _STORAGE, public=True, one_per_name=True),
    # The image store's records (Glance filters them by owner, visibility and members itself), and the
    # hypervisors' image caches (a server's build fills them), where files copied by hand are public images.
    "images": View("image_info", "images[0]", "images", ("image",), "source=store", public=True),
    "cached_images": View("image_info", "compute", "images", ("image", "server"), "source=cache", public=True),
    # The network node holds every port (their addresses), and the compute hosts the security groups.
    "ports": View("port_info", "network[0]", "ports", _NETWORKING),
    "security_groups": View("security_group_info", "compute", "security_groups",
                            ("security_group", "port", "server"), one_per_name=True),
    "routers": View("router_info", "network[0]", "routers", _NETWORKING),
    "floating_ips": View("router_info", "network[0]", "floating_ips", _NETWORKING),
}


def collection_paths(settings) -> list[Path]:
    return [Path(p) for p in collections_path(settings).split(os.pathsep) if p]


def module_exists(settings, name: str) -> bool:
    relative = Path("ansible_collections/nimbus/cloud/plugins/modules") / (name + ".py")
    return any((root / relative).is_file() for root in collection_paths(settings))


def groups_with_hosts(inventory_yaml: str) -> set[str] | None:
    """The groups of a YAML inventory that hold a host, directly or through their children; None when the text
    is not a YAML inventory (then every view is run, and Ansible says what it makes of it)."""
    try:
        data = yaml.safe_load(inventory_yaml)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    found = set()

    def walk(name, group) -> bool:
        group = group if isinstance(group, dict) else {}
        held = bool(group.get("hosts"))
        for child, value in (group.get("children") or {}).items():
            held = walk(child, value) or held
        if held:
            found.add(name)
        return held

    for name, group in data.items():
        walk(name, group)
    return found


def pattern_groups(pattern: str) -> list[str]:
    """The groups a view's host pattern names (``network[0]`` -> ``network``; ``a:b`` -> both)."""
    return [re.sub(r"\[[0-9]+\]$", "", part) for part in pattern.split(":")]


class ResourceViews:
    """The views, each read cached per source for ``resources_ttl`` seconds.

    ``last_change(resources)``: when the last job of these resources ended (epoch seconds, 0 for none), across
    projects and API processes (the jobs' records); a cached read that began before that is read again.
    """

    def __init__(self, settings, last_change=None):
        self.settings = settings
        self.last_change = last_change or (lambda resources: 0)
        # source -> (monotonic stamp, [(host, result)], errors, epoch the read began)
        self.cache: dict[tuple, tuple[float, list, list, float]] = {}
        self.locks = {source: threading.Lock() for source in {v.source for v in VIEWS.values()}}
        self._groups: tuple[float, set | None] | None = None

    def available(self, kind: str) -> bool:
        """Whether the collection has the kind's _info module and the service an inventory with hosts to run it
        on: a view whose groups have no host in the inventory (a cloud without an image store) is not run at
        all, rather than costing an ansible-runner start on every read to find nothing."""
        if not self.settings.resources_inventory or not module_exists(self.settings, VIEWS[kind].module):
            return False
        groups = self._inventory_groups()
        return groups is None or "all" in pattern_groups(VIEWS[kind].hosts) or any(
            group in groups for group in pattern_groups(VIEWS[kind].hosts))

    def _inventory_groups(self) -> set | None:
        path = Path(self.settings.resources_inventory)
        try:
            mtime = path.stat().st_mtime
            if self._groups is None or self._groups[0] != mtime:
                self._groups = (mtime, groups_with_hosts(path.read_text()) if path.is_file() else None)
        except OSError:
            return None
        return self._groups[1]

    def for_project(self, kind: str, project) -> dict:
        if not self.available(kind):
            return {"kind": kind, "available": False, "items": [], "errors": []}
        items, errors, read_at = self.read(kind)
        # Shared and external networks are every project's, as in Neutron.
        mine = [i for i in items if VIEWS[kind].public or i.get("project") == project.id or i.get("shared")
                or i.get("external")]
        return {"kind": kind, "available": True, "items": mine, "errors": errors, "read_at": read_at}

    def read(self, kind: str):
        """The kind's items and errors, and when their read began (epoch seconds).

        The read began after the last job that changed the kind ended (``View.changed_by``): what those jobs
        did is in the answer, whatever the cache's age.
        """
        view = VIEWS[kind]
        last_change = self.last_change(view.changed_by)
        # One reader per source at a time; the others wait for its result rather than start their own run.
        with self.locks[view.source]:
            cached = self.cache.get(view.source)
            if (not cached or time.monotonic() - cached[0] >= self.settings.resources_ttl
                    or cached[3] <= last_change):
                began = time.time()
                results, errors = self._run(view)
                cached = self.cache[view.source] = (time.monotonic(), results, errors, began)
        return items_of(view, cached[1]), cached[2], cached[3]

    def _run(self, view: View) -> tuple[list, list]:
        """Each host's result of the view's module, and the hosts that failed or were unreachable."""
        envvars = ansible_environment(self.settings)
        with tempfile.TemporaryDirectory(prefix="nimbus-resources-") as tmp:
            result = ansible_runner.run(
                private_data_dir=tmp, module="nimbus.cloud." + view.module, module_args=view.args,
                host_pattern=view.hosts, inventory=str(self.settings.resources_inventory), quiet=True,
                envvars=envvars, suppress_env_files=True, timeout=self.settings.resources_timeout)
            events = list(result.events)
        results, errors = [], []
        for event in events:
            data = event.get("event_data") or {}
            host, res = data.get("host"), data.get("res") or {}
            if event.get("event") == "runner_on_ok":
                results.append((host, res))
            elif event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
                errors.append({"host": host, "msg": str(res.get("msg") or "failed")[:500]})
        return results, errors


def items_of(view: View, results: list) -> list[dict]:
    """The kind's items in the hosts' results, each once, sorted by name."""
    items, seen = [], {}
    for host, res in results:
        for item in res.get(view.key) or []:
            # A network is on every host that carries it: list it once. Only the network node holds its
            # subnets and ports, so what one host leaves empty another host's answer fills in.
            ident = (item.get("name") if view.one_per_name
                     else item.get("id") or item.get("uuid") or (host, item.get("name")))
            kept = seen.get(ident)
            if kept is not None:
                kept.update({k: v for k, v in item.items() if v and not kept.get(k)})
                continue
            seen[ident] = dict(item, host=item.get("host") or host)
            items.append(seen[ident])
    return sorted(items, key=lambda i: str(i.get("name")))
