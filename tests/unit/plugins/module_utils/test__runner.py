import pytest
from ansible.module_utils import basic

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import CommandError
from ansible_collections.nimbus.cloud.plugins.module_utils._runner import MASK, CommandRunner


@pytest.fixture
def module(module_args, fake_commands):
    def make(check_mode=False):
        module_args({}, check_mode=check_mode)
        return basic.AnsibleModule(argument_spec={}, supports_check_mode=True)

    return make


def test_read_runs_in_check_mode_with_c_locale(module, fake_commands):
    table, calls = fake_commands
    table[("ip", "-j", "link")] = (0, "[]", "")
    runner = CommandRunner(module(check_mode=True))
    result = runner.read(["ip", "-j", "link"])
    assert result.ok and result.stdout == "[]"
    assert calls[0]["argv"] == ["/usr/bin/ip", "-j", "link"]
    assert calls[0]["environ_update"]["LANG"] == "C"
    assert calls[0]["environ_update"]["LC_ALL"] == "C"


def test_change_is_gated_in_check_mode(module, fake_commands):
    table, calls = fake_commands
    runner = CommandRunner(module(check_mode=True))
    assert runner.change(["ip", "link", "add", "br0", "type", "bridge"]) is None
    assert calls == []
    assert runner.planned == ["ip link add br0 type bridge"]


def test_change_runs_outside_check_mode(module, fake_commands):
    table, calls = fake_commands
    table[("ip", "link", "del", "br0")] = (0, "", "")
    runner = CommandRunner(module())
    assert runner.change(["ip", "link", "del", "br0"]).ok
    assert len(calls) == 1 and runner.planned == []


def test_failure_raises_with_secrets_masked(module, fake_commands):
    table = fake_commands[0]
    table[("tool", "--password", "s3cret")] = (3, "", "login s3cret refused")
    runner = CommandRunner(module())
    with pytest.raises(CommandError) as err:
        runner.read(["tool", "--password", "s3cret"], secrets=["s3cret"])
    assert err.value.rc == 3
    assert "s3cret" not in err.value.msg
    assert err.value.argv == ["/usr/bin/tool", "--password", MASK]
    assert err.value.stderr == "login %s refused" % MASK


def test_failure_tolerated_without_check_rc(module, fake_commands):
    table = fake_commands[0]
    table[("mariadb-admin", "ping")] = (1, "", "no server")
    result = CommandRunner(module()).read(["mariadb-admin", "ping"], check_rc=False)
    assert not result.ok and result.rc == 1


def test_secrets_go_through_stdin(module, fake_commands):
    table, calls = fake_commands
    table[("chpasswd",)] = (0, "", "")
    CommandRunner(module()).change(["chpasswd"], data="user:pw", secrets=["pw"])
    assert calls[0]["data"] == "user:pw"
    assert "pw" not in " ".join(calls[0]["argv"])


def test_binary_lookup_is_cached(module, fake_commands, monkeypatch):
    table = fake_commands[0]
    table[("true",)] = (0, "", "")
    looked_up = []
    original = basic.AnsibleModule.get_bin_path

    def counting(self, name, required=False, opt_dirs=None):
        looked_up.append(name)
        return original(self, name, required, opt_dirs)

    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", counting)
    runner = CommandRunner(module())
    runner.read(["true"])
    runner.read(["true"])
    assert looked_up == ["true"]
