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
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ansible_runner

from nimbus_api.settings import ansible_environment, collections_path


@dataclass(frozen=True)
class View:
    module: str
    hosts: str  # the inventory pattern of the hosts that know this kind
    key: str  # the list in the module's result
    # Ad-hoc module arguments are templated per host, so the inventory can choose, e.g., the libvirt URI.
    args: str = ""
    # Every project's (the hypervisors' image caches): not filtered by project.
    public: bool = False
    # Defined by name on every host that uses it, with no id of its own: one item per name.
    one_per_name: bool = False


VIEWS = {
    "instances": View("instance_info", "compute", "instances", "uri={{ nimbus_libvirt_uri | default('qemu:///system') }}"),
    "networks": View("network_info", "network:compute", "networks"),
    "volumes": View("volume_info", "storage:compute", "volumes"),
    # The image store's records (Glance filters them by owner, visibility and members itself), and the
    # hypervisors' image caches, where files copied by hand are public images.
    "images": View("image_info", "images[0]", "images", "source=store", public=True),
    "cached_images": View("image_info", "compute", "images", "source=cache", public=True),
    # The network node holds every port (their addresses), and the compute hosts the security groups.
    "ports": View("port_info", "network[0]", "ports"),
    "security_groups": View("security_group_info", "compute", "security_groups", one_per_name=True),
    "routers": View("router_info", "network[0]", "routers"),
    "floating_ips": View("router_info", "network[0]", "floating_ips"),
}


def collection_paths(settings) -> list[Path]:
    return [Path(p) for p in collections_path(settings).split(os.pathsep) if p]


def module_exists(settings, name: str) -> bool:
    relative = Path("ansible_collections/nimbus/cloud/plugins/modules") / (name + ".py")
    return any((root / relative).is_file() for root in collection_paths(settings))


class ResourceViews:
    def __init__(self, settings):
        self.settings = settings
        self.cache: dict[str, tuple[float, list, list, float]] = {}
        self.locks = {kind: threading.Lock() for kind in VIEWS}

    def available(self, kind: str) -> bool:
        """Whether the collection has the kind's _info module and the service an inventory to run it on."""
        return bool(self.settings.resources_inventory) and module_exists(self.settings, VIEWS[kind].module)

    def for_project(self, kind: str, project, fresher_than: float = 0) -> dict:
        if not self.available(kind):
            return {"kind": kind, "available": False, "items": [], "errors": []}
        items, errors, read_at = self.read(kind, fresher_than)
        # Shared and external networks are every project's, as in Neutron.
        mine = [i for i in items if VIEWS[kind].public or i.get("project") == project.id or i.get("shared")
                or i.get("external")]
        return {"kind": kind, "available": True, "items": mine, "errors": errors, "read_at": read_at}

    def read(self, kind: str, fresher_than: float = 0):
        """The kind's items and errors, and when their read began (epoch seconds).

        ``fresher_than``: a moment (epoch seconds) the read must have begun after, such as when the last job
        that changed this kind ended: what that job did is then in the answer, whatever the cache's age.
        """
        # One reader per kind at a time; the others wait for its result rather than start their own run.
        with self.locks[kind]:
            cached = self.cache.get(kind)
            if (not cached or time.monotonic() - cached[0] >= self.settings.resources_ttl
                    or cached[3] <= fresher_than):
                began = time.time()
                items, errors = self._run(VIEWS[kind])
                cached = self.cache[kind] = (time.monotonic(), items, errors, began)
            return cached[1], cached[2], cached[3]

    def _run(self, view: View):
        envvars = ansible_environment(self.settings)
        with tempfile.TemporaryDirectory(prefix="nimbus-resources-") as tmp:
            result = ansible_runner.run(
                private_data_dir=tmp, module="nimbus.cloud." + view.module, module_args=view.args,
                host_pattern=view.hosts, inventory=str(self.settings.resources_inventory), quiet=True,
                envvars=envvars, suppress_env_files=True, timeout=self.settings.resources_timeout)
            events = list(result.events)
        items, errors, seen = [], [], {}
        for event in events:
            data = event.get("event_data") or {}
            host, res = data.get("host"), data.get("res") or {}
            if event.get("event") == "runner_on_ok":
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
            elif event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
                errors.append({"host": host, "msg": str(res.get("msg") or "failed")[:500]})
        return sorted(items, key=lambda i: str(i.get("name"))), errors
