#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: An image in the nimbus.cloud image store (Glance's images)
version_added: 0.2.0
description:
  - Runs on the image store host (the P(nimbus.cloud.images#role) role). An image is a data file named by its UUID
    with a JSON record beside it (name, format, size, md5 and sha512 checksums, owner, visibility, members,
    properties), so its identity lives with its bytes and survives a rebuilt controller.
  - The data comes from a file on the controller (O(src)), a file on the store host (O(path)) or an http(s) URL
    (O(url)). It is copied into the store's incoming directory, checked against O(checksum) when given, and its
    format is read by C(qemu-img info) under CPU and memory limits, never from its name. Only qcow2 and raw are
    accepted; a qcow2 with a backing file, an external data file or encryption is refused, as Glance's format
    inspector refuses them. A mismatch, a refused format or a full store leaves nothing behind.
  - Hypervisors pull an image into their cache on first use and check its sha512 (see M(nimbus.cloud.instance)).
  - The image is found by O(id) when given, else by O(name); several images of one name need O(id).
  - The create-only attributes are the data and O(disk_format), fixed once the image exists (a new O(src), O(path) or O(url) is not read
    again); the other attributes are updatable, and options left out keep their current value (a new image takes
    the documented defaults).
  - O(state=deactivated) keeps the image but stops new instances from booting it (Glance's deactivate); instances
    already using it keep running. O(state=present) reactivates it.
  - A protected image cannot be deleted; set O(protected=false) first.
  - In check mode nothing is downloaded or written; the result's RV(commands) lists what a real run would do, and a
    new image's size and checksums are unknown (null).
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: The image's name. Required to create an image.
    type: str
  id:
    description:
      - The image's UUID. Given to a new image, it becomes its id (the API service passes Glance's id this way);
        left out, a new image gets a random one.
    type: str
  state:
    description: C(present) (active), C(deactivated) or C(absent).
    type: str
    choices: [present, deactivated, absent]
    default: present
  src:
    description:
      - A file on the controller. It is sent to the store host only when the image does not exist yet.
    type: path
  path:
    description: A file on the image store host.
    type: path
  url:
    description: An C(http://) or C(https://) URL. It is recorded without its user info and query string.
    type: str
  url_username:
    description: User for HTTP basic authentication to O(url).
    type: str
  url_password:
    description: Password for HTTP basic authentication to O(url).
    type: str
  validate_certs:
    description: Verify the TLS certificate of an C(https://) O(url).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for O(url) to answer.
    type: int
    default: 60
  checksum:
    description:
      - C(sha256:<hex>) or C(sha512:<hex>) of the source. A mismatch fails and registers nothing.
      - md5 and sha1 are refused.
    type: str
  disk_format:
    description:
      - The format the image is stored in. Left out, the format qemu-img reads in the source.
      - Given and different from the source's, the task fails unless O(convert=true).
    type: str
    choices: [qcow2, raw]
  convert:
    description: Convert the source to O(disk_format) with C(qemu-img convert).
    type: bool
    default: false
  visibility:
    description: C(private) (the owner), C(shared) (the owner and O(members)), C(community) or C(public) (everyone).
    type: str
    choices: [private, shared, community, public]
  project:
    description: The project that owns the image.
    type: str
  members:
    description: Projects an image with O(visibility=shared) is shared with, compared as a set.
    type: list
    elements: str
  protected:
    description: Refuse to delete the image.
    type: bool
  min_disk:
    description: Smallest root disk, in GiB, an instance of this image needs.
    type: int
  min_ram:
    description: Smallest RAM, in MiB, an instance of this image needs.
    type: int
  properties:
    description:
      - Free properties (Glance's additional properties, such as C(os_type), C(os_distro), C(hw_disk_bus)), as the
        whole set. Names of the image's own fields are refused.
    type: dict
  src_on_controller:
    description:
      - Internal, set by the action plugin for O(src); do not set it.
    type: str
notes:
  - The action plugin runs on the controller for O(src); O(path) and O(url) are read by the module on the store host.
seealso:
  - module: nimbus.cloud.image_info
  - module: nimbus.cloud.instance
"""

EXAMPLES = r"""
- name: Register Debian's cloud image from a mirror on the management network
  nimbus.cloud.image:
    name: debian-12
    url: http://mirror.example.internal/debian-12-genericcloud-amd64.qcow2
    checksum: "sha512:{{ debian_12_sha512 }}"
    visibility: public
    min_disk: 2
    properties:
      os_type: linux
      os_distro: debian

- name: Store a raw image uploaded from the controller as qcow2
  nimbus.cloud.image:
    name: appliance
    src: files/appliance.img
    disk_format: qcow2
    convert: true
    project: demo

- name: Stop new instances from booting it
  nimbus.cloud.image:
    name: debian-12
    state: deactivated
"""

RETURN = r"""
image:
  description: The image after the task (empty when absent). Null fields are unknown until the data is read.
  returned: always
  type: dict
  contains:
    id: {description: The image's UUID (also the name of its file in the store and in hypervisor caches)., type: str}
    name: {description: The image's name., type: str}
    status: {description: C(active) or C(deactivated)., type: str}
    disk_format: {description: C(qcow2) or C(raw)., type: str}
    size: {description: Bytes of the stored file., type: int}
    virtual_size: {description: Bytes of the disk it holds., type: int}
    checksum: {description: md5 of the stored file (Glance's C(checksum))., type: str}
    os_hash_algo: {description: C(sha512)., type: str}
    os_hash_value: {description: "sha512 of the stored file, which hypervisors verify.", type: str}
    visibility: {description: Who may use it., type: str}
    project: {description: Owner., type: str}
    members: {description: Projects it is shared with., type: list}
    protected: {description: Whether deletion is refused., type: bool}
    min_disk: {description: GiB., type: int}
    min_ram: {description: MiB., type: int}
    properties: {description: Free properties., type: dict}
    source:
      description: "Where the data came from: a URL without user info and query, a path, or the controller's file."
      type: str
  sample:
    id: 0b0e8a32-6b0c-4f4e-9a56-8a1d4c0d1a11
    name: debian-12
    status: active
    disk_format: qcow2
    size: 347734016
    virtual_size: 2147483648
    checksum: 1b9f0c1cbf8c4fa7ec35f3f0a1b2c3d4
    os_hash_algo: sha512
    os_hash_value: 5f6e...
    visibility: public
    project: null
    members: []
    protected: false
    min_disk: 2
    min_ram: 0
    properties: {os_type: linux}
    source: http://mirror.example.internal/debian-12-genericcloud-amd64.qcow2
commands:
  description: In check mode, what a real run would do (the steps of the plan).
  returned: check mode
  type: list
  elements: str
  sample: ["register image debian-12 (0b0e8a32-6b0c-4f4e-9a56-8a1d4c0d1a11) from http://mirror.example.internal/debian-12.qcow2"]
needs_data:
  description: Set (with nothing changed) when the image does not exist and O(src) must be sent; the action plugin
    sends it and runs the module again.
  returned: internal
  type: bool
"""

import os
import uuid as uuidlib

from ansible.module_utils.urls import fetch_url

from ansible_collections.nimbus.cloud.plugins.module_utils import _images as images
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Plan, ResourceModule


class ImageModule(ResourceModule):
    resource = "image"
    kind = images.KIND
    updatable = images.UPDATABLE
    create_only = images.CREATE_ONLY
    defaults = images.DEFAULTS
    argument_spec = dict(
        name=dict(type="str"),
        id=dict(type="str"),
        state=dict(type="str", choices=list(images.STATES), default="present"),
        src=dict(type="path"),
        path=dict(type="path"),
        url=dict(type="str"),
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="int", default=60),
        checksum=dict(type="str"),
        disk_format=dict(type="str", choices=list(images.DISK_FORMATS)),
        convert=dict(type="bool", default=False),
        visibility=dict(type="str", choices=list(images.VISIBILITIES)),
        project=dict(type="str"),
        members=dict(type="list", elements="str"),
        protected=dict(type="bool"),
        min_disk=dict(type="int"),
        min_ram=dict(type="int"),
        properties=dict(type="dict"),
        src_on_controller=dict(type="str"),
    )
    mutually_exclusive = (("src", "path", "url"), ("url", "src_on_controller"))
    required_one_of = (("name", "id"),)
    required_by = {"url_username": "url", "url_password": "url"}

    def prepare(self):
        p = self.params
        if p["src"] is not None:
            raise ValidationError("src is read on the controller by the nimbus.cloud.image action; run the module "
                                  "through it (as nimbus.cloud.image), or give path")
        if p["id"] is not None:
            try:
                p["id"] = str(uuidlib.UUID(p["id"]))
            except ValueError:
                raise ValidationError("id %r is not a UUID" % p["id"])
        if p["name"] is not None and (not p["name"].strip() or len(p["name"]) > 255):
            raise ValidationError("image name must be 1 to 255 characters, not only spaces")
        self.expected = images.parse_checksum(p["checksum"]) if p["checksum"] else None
        self.recorded_url = images.check_url(p["url"]) if p["url"] is not None else None
        if p["path"] is not None and not os.path.isabs(p["path"]):
            raise ValidationError("path must be absolute")
        if p["timeout"] <= 0:
            raise ValidationError("timeout must be more than 0")
        if p["convert"] and p["disk_format"] is None:
            raise ValidationError("convert=true needs disk_format (the format to convert to)")
        self.store = images.Store(self.runner)
        if p["path"] is not None:
            real = os.path.realpath(p["path"])
            if os.path.commonpath([real, os.path.realpath(self.store.path)]) == os.path.realpath(self.store.path):
                raise ValidationError("path %s is inside the image store; give a file outside it" % p["path"])

    def session(self):
        return self.store.lock()

    def task(self):
        task = super().task()
        if self.params["state"] != "absent":
            task["status"] = "deactivated" if self.params["state"] == "deactivated" else "active"
        return task

    def find(self):
        return self.store.find(self.params["id"], self.params["name"])

    def run(self):
        self.needs_data = False
        result = super().run()
        if self.needs_data:
            result["needs_data"] = True
        elif self.changed and result["image"] and not self.check_mode:
            # A new image's size and checksums exist only once its data is in: report the record as written.
            result["image"] = self.store.get(result["image"]["id"]).view()
            self.set_diff(self._diff["before"], result["image"])
        return result

    def plan_present(self, current):
        p = self.params
        if current is None and p["name"] is None:
            raise ValidationError("image %s does not exist: give name to register it" % p["id"])
        if current is None and p["src_on_controller"] is not None and p["path"] is None and not self.check_mode:
            # Nothing changes: the action plugin sends the file and runs the module again with path.
            self.needs_data = True
            return Plan()
        return images.plan_present(self.store, current, self.task(), self.source(), convert=p["convert"],
                                   image_id=p["id"], name=p["name"])

    def plan_absent(self, current):
        return images.plan_absent(self.store, current)

    def source(self):
        """(what the record calls the source, a function that opens it, the expected checksum), or None."""
        p = self.params
        if p["url"] is not None:
            return self.recorded_url, self.open_url, self.expected
        described = "controller file %s" % p["src_on_controller"] if p["src_on_controller"] else p["path"]
        if p["path"] is not None:
            return described, self.open_path, self.expected
        if p["src_on_controller"] is not None:
            return described, None, self.expected
        return None

    def open_path(self):
        path = self.params["path"]
        try:
            return open(path, "rb"), self.source()[0]
        except OSError as e:
            raise ValidationError("path %s cannot be read: %s" % (path, e.strerror))

    def open_url(self):
        p = self.params
        # fetch_url reads the credentials and these two settings from the module's parameters: credentials
        # never reach argv or the result; a redirect is followed only for GET, and checked below.
        p["follow_redirects"] = "safe"
        p["force_basic_auth"] = p["url_username"] is not None
        response, info = fetch_url(self.module, p["url"], timeout=p["timeout"], use_proxy=True)
        if info.get("status") != 200 or response is None:
            raise NimbusError("url %s answered %s: %s"
                              % (self.recorded_url, info.get("status"), info.get("msg", "no response")))
        final = info.get("url") or p["url"]
        images.check_url(final)
        return response, self.recorded_url


def main():
    ImageModule.main()


if __name__ == "__main__":
    main()
