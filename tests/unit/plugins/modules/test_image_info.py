import os

import pytest
import yaml

from ansible_collections.nimbus.cloud.plugins.module_utils._ipam import derive_id
from ansible_collections.nimbus.cloud.plugins.modules import image_info
from ansible_collections.nimbus.cloud.plugins.modules.image_info import ImageInfoModule
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules import fake_libvirt

DOCUMENTED = sorted(yaml.safe_load(image_info.RETURN)["images"]["contains"])


@pytest.fixture
def host(monkeypatch, tmp_path):
    return fake_libvirt.install(monkeypatch, tmp_path)


def test_lists_images_by_what_qemu_img_reads(host, run_module):
    host.add_image("tiny.qcow2", virtual_size=16 * 1024 ** 2)
    host.add_image("disk.raw", virtual_size=1024 ** 3, fmt="raw")
    # Not images: a file qemu-img cannot read, a format an instance cannot boot, a link, a directory, a dot file.
    (host.images / "notes.txt").write_text("hello")
    host.add_image("old.vmdk", fmt="vmdk")
    os.symlink(str(host.images / "tiny.qcow2"), str(host.images / "link.qcow2"))
    (host.images / "sub").mkdir()
    host.add_image(".partial.qcow2")
    result, failed = run_module(ImageInfoModule, {}, check_mode=True)
    assert not failed and result["changed"] is False
    images = result["images"]
    assert [i["name"] for i in images] == ["disk.raw", "tiny.qcow2"]
    assert all(sorted(i) == DOCUMENTED for i in images)
    tiny = images[1]
    assert (tiny["id"], tiny["file"], tiny["disk_format"], tiny["virtual_size"]) == (
        derive_id("image", "tiny.qcow2"), "tiny.qcow2", "qcow2", 16 * 1024 ** 2)
    assert tiny["size"] == os.path.getsize(str(host.images / "tiny.qcow2"))
    assert images[0]["disk_format"] == "raw"


def test_filter_by_name_and_an_empty_cache(host, run_module):
    assert run_module(ImageInfoModule, {})[0]["images"] == []
    host.add_image("a.qcow2")
    host.add_image("b.qcow2")
    assert [i["name"] for i in run_module(ImageInfoModule, {"name": ["b.qcow2", "zz"]})[0]["images"]] == ["b.qcow2"]
