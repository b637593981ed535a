#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: List the images of the nimbus.cloud image store or of a hypervisor's image cache
version_added: 0.1.0
description:
  - With O(source=store), reads the image store on the host the task runs on (the P(nimbus.cloud.images#role) role),
    every image's record as M(nimbus.cloud.image) returns it.
  - With O(source=cache), reads the image cache directory of the hypervisor the task runs on (the images pool of the
    P(nimbus.cloud.kvm#role) role), where M(nimbus.cloud.instance) finds O(nimbus.cloud.instance#module:image).
    Each regular file is an image; its format and virtual size come from C(qemu-img info), never from its name.
    Files of another format, links and directories are left out. An image pulled from the store keeps the store's
    id and name; a file copied there by hand gets an id derived from its file name, the same on every hypervisor.
  - The API service's images resource view (Glance's image list) reads this.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
options:
  source:
    description: C(store) (the image store's records) or C(cache) (a hypervisor's cached files).
    type: str
    choices: [store, cache]
    default: cache
  name:
    description: Only images of these names (for C(cache), image file names or the names of pulled images).
    type: list
    elements: str
  id:
    description: Only images of these ids.
    type: list
    elements: str
requirements:
  - qemu-utils on the hypervisor (the P(nimbus.cloud.kvm#role) role installs it)
seealso:
  - module: nimbus.cloud.instance
"""

EXAMPLES = r"""
- name: The images every hypervisor can boot
  nimbus.cloud.image_info:
  register: cached

- name: The store's record of one image
  nimbus.cloud.image_info:
    source: store
    name: [debian-12]
  register: stored
"""

RETURN = r"""
images:
  description:
    - The images, sorted by name. For O(source=store), each image has the keys M(nimbus.cloud.image) returns; for
      O(source=cache), the keys below.
  returned: always
  type: list
  elements: dict
  contains:
    id: {description: The image's id (derived from its file name)., type: str}
    name: {description: The file name (what M(nimbus.cloud.instance) takes as its image)., type: str}
    file: {description: The same file name., type: str}
    disk_format: {description: "C(qcow2) or C(raw), as qemu-img reads it.", type: str}
    size: {description: Bytes the file takes., type: int}
    virtual_size: {description: Bytes of the disk it holds., type: int}
    updated_at: {description: When the file last changed (UTC)., type: str}
  sample:
    - id: 5d2f9e67-0c1a-5b8e-9a77-2f1c3e4d5a6b
      name: nimbus-tiny.qcow2
      file: nimbus-tiny.qcow2
      disk_format: qcow2
      size: 1245184
      virtual_size: 16777216
      updated_at: "2026-11-30T12:00:00Z"
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _images as images
from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt as lv
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class ImageInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        source=dict(type="str", choices=["store", "cache"], default="cache"),
        name=dict(type="list", elements="str"),
        id=dict(type="list", elements="str"),
    )

    def run(self):
        names, ids = self.params["name"], self.params["id"]
        if self.params["source"] == "store":
            found = [i.view() for i in images.Store(self.runner).images()]
        else:
            found = lv.cached_images(self.runner, lv.load_settings())
        found = [i for i in found if (names is None or i["name"] in names or i.get("file") in names)
                 and (ids is None or i["id"] in ids)]
        return {"images": sorted(found, key=lambda i: (i["name"], i["id"]))}


def main():
    ImageInfoModule.main()


if __name__ == "__main__":
    main()
