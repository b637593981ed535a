"""The runbooks' job templates: what the OpenStack APIs launch, and how a cloud registers them.

Each template names a playbook of the collection's ``playbooks/`` directory and the JSON Schema of the
variables a request may give it; the operator gives the inventory (the hosts the runbooks act on) and the
template variables (trusted, such as ``runbook_kernels``). ``nimbus-api runbooks`` registers them, and
changes only what differs, so the api role can run it on every converge.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from sqlalchemy import select

from nimbus_api import variables
from nimbus_api.models import JobTemplate
from nimbus_api.runner import inventory_hosts

UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_SERVER_ID = {"type": "string", "pattern": UUID_PATTERN}
_STRINGS = {"type": "string", "maxLength": 255}
_NAME = {"type": "string", "pattern": NAME_PATTERN}
_FLAVOR = {"type": "object", "additionalProperties": False, "required": ["name", "vcpus", "ram_mb", "disk_gb"],
           "properties": {"name": _NAME, "vcpus": {"type": "integer", "minimum": 1, "maximum": 1024},
                          "ram_mb": {"type": "integer", "minimum": 1}, "disk_gb": {"type": "integer", "minimum": 0}}}
# An IPv4 address or network, as the API has already checked it.
_ADDRESS = {"type": "string", "pattern": "^[0-9.]{7,15}(/[0-9]{1,2})?$"}


# An image's free properties, checked again by the image module.
_IMAGE_PROPERTIES = {"type": "object", "maxProperties": 128,
                     "propertyNames": {"pattern": "^[A-Za-z0-9_][A-Za-z0-9_:.-]{0,254}$"},
                     "additionalProperties": {"type": "string", "maxLength": 65535}}


# Volumes, snapshots and backups: what the volume modules check again.
_VOLUME_NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "[^ ]"}
_GIB = {"type": "integer", "minimum": 1, "maximum": 65536}
_DESCRIPTION = {"type": "string", "maxLength": 255}
_VOLUME_METADATA = {"type": "object", "maxProperties": 128,
                    "propertyNames": {"minLength": 1, "maxLength": 255},
                    "additionalProperties": {"type": "string", "maxLength": 255}}


def _schema(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


TEMPLATES = {
    "nimbus.server_create": {
        "playbook": "server_create.yml",
        "description": "Create a server: its ports, a hypervisor chosen by the scheduler, the instance (Nova's "
                       "POST /servers)",
        # An image, or a volume to boot from: one of them.
        "schema": dict(_schema({
            "server_id": _SERVER_ID,
            "server_name": {"type": "string", "minLength": 1, "maxLength": 255},
            "server_flavor": _FLAVOR,
            "server_image": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"},
            "server_boot_volume": _SERVER_ID,
            # A network (a port is made on it), or a port made before and the network it is on.
            "server_networks": {"type": "array", "maxItems": 8, "items": {"anyOf": [
                _NAME, _schema({"network": _NAME, "port": _NAME}, ["network", "port"])]}},
            "server_security_groups": {"type": "array", "maxItems": 10,
                                       "items": {"type": "string", "pattern": NAME_PATTERN}},
            "server_keys": {"type": "array", "maxItems": 1, "items": {"type": "string", "maxLength": 16384}},
            "server_user_data": {"type": "string", "maxLength": 65535},
            "server_metadata": {"type": "object", "maxProperties": 140, "additionalProperties": _STRINGS},
        }, ["server_id", "server_name", "server_flavor"]),
            oneOf=[{"required": ["server_image"]}, {"required": ["server_boot_volume"]}]),
    },
    "nimbus.server_delete": {
        "playbook": "server_delete.yml",
        "description": "Delete a server: its instance and its ports (Nova's DELETE /servers/{id})",
        "schema": _schema({"server_id": _SERVER_ID}, ["server_id"]),
    },
    "nimbus.network_create": {
        "playbook": "network_create.yml",
        "description": "Create a network on every network and compute host (Neutron's POST /networks)",
        "schema": _schema({
            "network_id": {"type": "string", "pattern": NAME_PATTERN},
            "network_type": {"enum": ["vxlan", "vlan", "flat"]},
            "network_segmentation_id": {"type": "integer", "minimum": 1, "maximum": 16777215},
            "network_physical_network": {"type": "string", "pattern": NAME_PATTERN},
            "network_mtu": {"type": "integer", "minimum": 68, "maximum": 9000},
            "network_shared": {"type": "boolean"},
            "network_external": {"type": "boolean"},
        }, ["network_id", "network_type"]),
    },
    "nimbus.network_delete": {
        "playbook": "network_delete.yml",
        "description": "Delete a network from every host (Neutron's DELETE /networks/{id})",
        "schema": _schema({"network_id": {"type": "string", "pattern": NAME_PATTERN}}, ["network_id"]),
    },
    "nimbus.subnet_create": {
        "playbook": "subnet_create.yml",
        "description": "Create a subnet and its DHCP server on the network node (Neutron's POST /subnets)",
        "schema": _schema({
            "subnet_id": {"type": "string", "pattern": NAME_PATTERN},
            "subnet_network": {"type": "string", "pattern": NAME_PATTERN},
            "subnet_cidr": _ADDRESS,
            "subnet_gateway": _ADDRESS,
            "subnet_allocation_pools": {"type": "array", "maxItems": 16, "items": _schema(
                {"start": _ADDRESS, "end": _ADDRESS}, ["start", "end"])},
            "subnet_dns_servers": {"type": "array", "maxItems": 5, "items": _ADDRESS},
            "subnet_host_routes": {"type": "array", "maxItems": 16, "items": _schema(
                {"destination": _ADDRESS, "nexthop": _ADDRESS}, ["destination", "nexthop"])},
            "subnet_enable_dhcp": {"type": "boolean"},
        }, ["subnet_id", "subnet_network", "subnet_cidr"]),
    },
    "nimbus.subnet_delete": {
        "playbook": "subnet_delete.yml",
        "description": "Delete a subnet (Neutron's DELETE /subnets/{id})",
        "schema": _schema({"subnet_id": {"type": "string", "pattern": NAME_PATTERN},
                           "subnet_network": {"type": "string", "pattern": NAME_PATTERN}},
                          ["subnet_id", "subnet_network"]),
    },
    "nimbus.port_create": {
        "playbook": "port_create.yml",
        "description": "Create a port and hold its addresses on the network node (Neutron's POST /ports)",
        "schema": _schema({
            "port_id": _NAME, "port_network": _NAME,
            "port_fixed_ips": {"type": "array", "maxItems": 8, "items": _schema(
                {"subnet": _NAME, "ip": _ADDRESS}, [])},
            "port_mac": {"type": "string", "pattern": "^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"},
            "port_security_groups": {"type": "array", "maxItems": 10, "items": _NAME},
            "port_security": {"type": "boolean"},
        }, ["port_id", "port_network"]),
    },
    "nimbus.port_delete": {
        "playbook": "port_delete.yml",
        "description": "Delete a port no server or router uses (Neutron's DELETE /ports/{id})",
        "schema": _schema({"port_id": _NAME, "port_network": _NAME}, ["port_id", "port_network"]),
    },
    "nimbus.security_group_create": {
        "playbook": "security_group_create.yml",
        "description": "Create a security group or set its rules on every compute host (Neutron's POST "
                       "/security-groups, and rule changes)",
        "schema": _schema({
            "security_group_id": _NAME,
            "security_group_description": _STRINGS,
            "security_group_rules": {"type": "array", "maxItems": 100, "items": _schema({
                "direction": {"enum": ["ingress", "egress"]},
                "protocol": {"type": "string", "pattern": "^(any|icmp|tcp|udp|[0-9]{1,3})$"},
                "port_range_min": {"type": ["integer", "null"], "minimum": 0, "maximum": 65535},
                "port_range_max": {"type": ["integer", "null"], "minimum": 0, "maximum": 65535},
                "remote_ip_prefix": {"anyOf": [_ADDRESS, {"type": "null"}]},
                "remote_group": {"anyOf": [_NAME, {"type": "null"}]},
            }, ["direction", "protocol"])},
        }, ["security_group_id"]),
    },
    "nimbus.security_group_delete": {
        "playbook": "security_group_delete.yml",
        "description": "Delete a security group from every compute host (Neutron's DELETE /security-groups/{id})",
        "schema": _schema({"security_group_id": _NAME}, ["security_group_id"]),
    },
    "nimbus.router_create": {
        "playbook": "router_create.yml",
        "description": "Create a router or set its interfaces and gateway on the network node (Neutron's POST "
                       "/routers, its gateway, add_router_interface, remove_router_interface)",
        "schema": _schema({
            "router_id": _NAME,
            "router_interfaces": {"type": "array", "maxItems": 32, "items": _schema(
                {"network": _NAME, "subnet": _NAME}, ["network", "subnet"])},
            "router_external_network": {"anyOf": [_NAME, {"const": ""}]},
            "router_external_fixed_ip": _ADDRESS,
            "router_enable_snat": {"type": "boolean"},
        }, ["router_id"]),
    },
    "nimbus.router_delete": {
        "playbook": "router_delete.yml",
        "description": "Delete a router with no interface left (Neutron's DELETE /routers/{id})",
        "schema": _schema({"router_id": _NAME}, ["router_id"]),
    },
    "nimbus.floating_ip_create": {
        "playbook": "floating_ip_create.yml",
        "description": "Create a floating IP or point it at a port (Neutron's POST /floatingips and its PUT)",
        "schema": _schema({
            "floating_ip_id": _NAME, "floating_ip_router": _NAME, "floating_ip_address": _ADDRESS,
            "floating_ip_port": {"anyOf": [_NAME, {"const": ""}]}, "floating_ip_port_network": _NAME,
            "floating_ip_fixed_ip": _ADDRESS,
        }, ["floating_ip_id", "floating_ip_router"]),
    },
    "nimbus.floating_ip_delete": {
        "playbook": "floating_ip_delete.yml",
        "description": "Delete a floating IP (Neutron's DELETE /floatingips/{id})",
        "schema": _schema({"floating_ip_id": _NAME}, ["floating_ip_id"]),
    },
    "nimbus.server_resize": {
        "playbook": "server_resize.yml",
        "description": "Give a stopped server another flavor on its hypervisor (Nova's resize and revertResize)",
        "schema": _schema({"server_id": _SERVER_ID, "server_flavor": _FLAVOR}, ["server_id", "server_flavor"]),
    },
    "nimbus.server_action": {
        "playbook": "server_action.yml",
        "description": "Start, stop or reboot a server (Nova's server actions os-start, os-stop, reboot)",
        "schema": _schema({"server_id": _SERVER_ID,
                           "server_action": {"enum": ["start", "stop", "reboot"]},
                           "server_reboot_type": {"enum": ["soft", "hard"]}}, ["server_id", "server_action"]),
    },
    "nimbus.image_create": {
        "playbook": "image_create.yml",
        "description": "Register an uploaded image in the image store, checked by sha256 and by its real format "
                       "(Glance's PUT /images/{id}/file)",
        "schema": _schema({
            "image_id": _SERVER_ID, "image_name": {"type": "string", "minLength": 1, "maxLength": 255},
            "image_checksum": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            "image_disk_format": {"enum": ["qcow2", "raw"]},
            "image_visibility": {"enum": ["private", "shared", "community", "public"]},
            "image_protected": {"type": "boolean"},
            "image_min_disk": {"type": "integer", "minimum": 0, "maximum": 2 ** 31 - 1},
            "image_min_ram": {"type": "integer", "minimum": 0, "maximum": 2 ** 31 - 1},
            "image_properties": _IMAGE_PROPERTIES,
        }, ["image_id", "image_name", "image_checksum"]),
    },
    "nimbus.image_update": {
        "playbook": "image_update.yml",
        "description": "Change an image of the store, or deactivate and reactivate it (Glance's PATCH /images/{id} "
                       "and its deactivate and reactivate actions)",
        "schema": _schema({
            "image_id": _SERVER_ID, "image_state": {"enum": ["present", "deactivated"]},
            "image_visibility": {"enum": ["private", "shared", "community", "public"]},
            "image_members": {"type": "array", "maxItems": 128, "items": _NAME},
            "image_protected": {"type": "boolean"},
            "image_min_disk": {"type": "integer", "minimum": 0, "maximum": 2 ** 31 - 1},
            "image_min_ram": {"type": "integer", "minimum": 0, "maximum": 2 ** 31 - 1},
            "image_properties": _IMAGE_PROPERTIES,
        }, ["image_id"]),
    },
    "nimbus.image_delete": {
        "playbook": "image_delete.yml",
        "description": "Delete an image from the store (Glance's DELETE /images/{id})",
        "schema": _schema({"image_id": _SERVER_ID}, ["image_id"]),
    },
    "nimbus.volume_create": {
        "playbook": "volume_create.yml",
        "description": "Create a volume on the storage host: blank, or from an image, a snapshot, a volume or a "
                       "backup (Cinder's POST /volumes, a backup's restore)",
        "schema": _schema({
            "volume_id": _SERVER_ID, "volume_name": _VOLUME_NAME, "volume_size": _GIB,
            "volume_type": _NAME, "volume_description": _DESCRIPTION, "volume_metadata": _VOLUME_METADATA,
            "volume_image": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"},
            "volume_snapshot_id": _SERVER_ID, "volume_source_id": _SERVER_ID, "volume_backup_id": _SERVER_ID,
        }, ["volume_id", "volume_name"]),
    },
    "nimbus.volume_update": {
        "playbook": "volume_update.yml",
        "description": "Grow, rename or describe a volume, or set its metadata (Cinder's PUT /volumes/{id}, "
                       "os-extend)",
        "schema": _schema({"volume_id": _SERVER_ID, "volume_name": _VOLUME_NAME, "volume_size": _GIB,
                           "volume_description": _DESCRIPTION, "volume_metadata": _VOLUME_METADATA},
                          ["volume_id"]),
    },
    "nimbus.volume_delete": {
        "playbook": "volume_delete.yml",
        "description": "Delete a volume, and with cascade its snapshots (Cinder's DELETE /volumes/{id})",
        "schema": _schema({"volume_id": _SERVER_ID, "volume_cascade": {"type": "boolean"}}, ["volume_id"]),
    },
    "nimbus.volume_attach": {
        "playbook": "volume_attach.yml",
        "description": "Export a volume to a server's compute host and attach it live (Nova's POST "
                       "/servers/{id}/os-volume_attachments)",
        "schema": _schema({"server_id": _SERVER_ID, "volume_id": _SERVER_ID,
                           "volume_device": {"type": "string", "pattern": "^vd[b-z]$"}},
                          ["server_id", "volume_id"]),
    },
    "nimbus.volume_detach": {
        "playbook": "volume_detach.yml",
        "description": "Detach a volume live and remove its export (Nova's DELETE "
                       "/servers/{id}/os-volume_attachments/{volume_id})",
        "schema": _schema({"server_id": _SERVER_ID, "volume_id": _SERVER_ID}, ["server_id", "volume_id"]),
    },
    "nimbus.snapshot_create": {
        "playbook": "snapshot_create.yml",
        "description": "Take a snapshot of a detached volume (Cinder's POST /snapshots)",
        "schema": _schema({"snapshot_id": _SERVER_ID, "volume_id": _SERVER_ID, "snapshot_name": _VOLUME_NAME,
                           "snapshot_description": _DESCRIPTION, "snapshot_metadata": _VOLUME_METADATA},
                          ["snapshot_id", "volume_id", "snapshot_name"]),
    },
    "nimbus.snapshot_delete": {
        "playbook": "snapshot_delete.yml",
        "description": "Delete a snapshot (Cinder's DELETE /snapshots/{id})",
        "schema": _schema({"snapshot_id": _SERVER_ID}, ["snapshot_id"]),
    },
    "nimbus.backup_create": {
        "playbook": "backup_create.yml",
        "description": "Back a volume up into the storage host's backup directory (Cinder's POST /backups)",
        "schema": _schema({"backup_id": _SERVER_ID, "volume_id": _SERVER_ID, "backup_name": _VOLUME_NAME,
                           "backup_description": _DESCRIPTION}, ["backup_id", "volume_id", "backup_name"]),
    },
    "nimbus.backup_delete": {
        "playbook": "backup_delete.yml",
        "description": "Delete a backup (Cinder's DELETE /backups/{id})",
        "schema": _schema({"backup_id": _SERVER_ID}, ["backup_id"]),
    },
    # The cloud admin's: it converges a host and changes every host's flood lists, for every project.
    "nimbus.compute_host_add": {
        "playbook": "compute_host_add.yml",
        "description": "Add a compute host: converge it, give it the cloud's networks, security groups and "
                       "images, and add its VXLAN endpoint to every host (the host must be in the inventory)",
        "schema": _schema({"compute_host": {"type": "string", "pattern": NAME_PATTERN}}, ["compute_host"]),
        "launch_role": "admin",
    },
}


class RunbookError(ValueError):
    """An inventory or template variables the runbooks cannot be registered with."""


def register(db, inventory: str, extra_vars: dict, playbooks_dir=None, timeout: int = 1800) -> list[str]:
    """Create or update every runbook's template with this inventory and these variables; the names of the
    templates that changed. Jobs keep their templates: a template is updated in place, never replaced.
    ``playbooks_dir``: where the jobs find the playbooks; each runbook must be there."""
    if playbooks_dir is not None:
        missing = sorted(s["playbook"] for s in TEMPLATES.values() if not (Path(playbooks_dir) / s["playbook"]).is_file())
        if missing:
            raise RunbookError("%s not in the playbooks directory %s" % (", ".join(missing), playbooks_dir))
    try:
        hosts = inventory_hosts(inventory)
    except Exception as e:
        raise RunbookError("the runbooks' inventory is not a YAML inventory: %s" % str(e)[:200])
    if not hosts:
        raise RunbookError("the runbooks' inventory names no host")
    try:
        variables.check_names(sorted(extra_vars), "runbook variables")
        variables.check_value(extra_vars, "runbook variables")
    except variables.VariableError as e:
        raise RunbookError(str(e))
    changed = []
    for name, spec in TEMPLATES.items():
        jsonschema.Draft202012Validator.check_schema(spec["schema"])
        wanted = {"description": spec["description"], "playbook": spec["playbook"], "inventory": inventory,
                  "extra_vars_schema": json.dumps(spec["schema"], sort_keys=True),
                  "extra_vars": json.dumps(extra_vars, sort_keys=True),
                  "launch_role": spec.get("launch_role", "member"),
                  "timeout": timeout}
        template = db.scalar(select(JobTemplate).where(JobTemplate.name == name))
        if template is None:
            db.add(JobTemplate(name=name, allowed_projects="", credential_names="", **wanted))
            changed.append(name)
        elif any(getattr(template, k) != v for k, v in wanted.items()):
            for key, value in wanted.items():
                setattr(template, key, value)
            changed.append(name)
    db.commit()
    return changed
