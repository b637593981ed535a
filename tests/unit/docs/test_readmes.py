"""README.md and the role READMEs say what the collection does: the multi-host inventory example has every group
playbooks/site.yml converges and loads in Ansible, the secrets table names every secret a role takes, and each
role README names every variable of the role's defaults."""

import pathlib
import re

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

ROOT = pathlib.Path(__file__).parents[3]
README = (ROOT / "README.md").read_text()
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "defaults" / "main.yml").is_file())


def load(path):
    return yaml.safe_load(path.read_text()) or {}


def example_files():
    """The README's example inventory files: a `path` line, then its YAML block."""
    found = re.findall(r"^`(inventories/[^`]+\.yml)`[^\n]*\n\n```yaml\n(.*?)^```", README, flags=re.M | re.S)
    return dict(found)


def site_groups():
    groups = set()
    for play in load(ROOT / "playbooks" / "site.yml"):
        groups.update(re.split(r"[:,]", play["hosts"]))
    return groups


@pytest.fixture
def inventory(tmp_path):
    files = example_files()
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    hosts = [p for p in files if p.endswith("/hosts.yml")]
    assert len(hosts) == 1, sorted(files)
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(tmp_path / hosts[0])])
    return manager, VariableManager(loader=loader, inventory=manager), files


def secret_options():
    """Every option a role marks no_log, as `name` or `name[].suboption`."""
    found = set()
    for role in ROLES:
        options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
        for name, spec in options.items():
            if spec.get("no_log"):
                found.add((name, role.name))
            for sub, subspec in (spec.get("options") or {}).items():
                if subspec.get("no_log"):
                    found.add(("%s[].%s" % (name, sub), role.name))
    return found


def test_the_inventory_example_has_a_host_in_every_group_site_yml_converges(inventory):
    groups = inventory[0].get_groups_dict()
    assert site_groups() >= {"mariadb", "rabbitmq", "compute", "network", "api", "api_workers"}
    for group in sorted(site_groups()):
        assert groups.get(group), "README's inventory example has no host in group %s" % group


def test_worker_hosts_of_the_example_run_no_api_server(inventory):
    manager, variables = inventory[:2]
    for host in manager.get_hosts("api_workers"):
        assert variables.get_vars(host=host).get("api_server_enabled") is False, host.name
    for host in manager.get_hosts("api"):
        assert variables.get_vars(host=host).get("api_server_enabled", True) is not False, host.name


def test_every_vaulted_variable_the_example_uses_is_in_the_example_vault(inventory):
    files = inventory[2]
    vault = re.search(r"^`[^`]*vault\.yml`[^\n]*\n\n```yaml\n(.*?)^```", README, flags=re.M | re.S)
    assert vault, "README shows no vault file"
    defined = set(yaml.safe_load(vault.group(1)))
    used = set(re.findall(r"\bvault_\w+", "\n".join(files.values())))
    assert used and used == defined


def test_the_secrets_table_names_every_secret_of_every_role():
    section = re.search(r"^### Secrets\n(.*?)^## ", README, flags=re.M | re.S)
    assert section, "README has no secrets section"
    table = {(m.group(1), m.group(2))
             for m in re.finditer(r"^\| `([\w.\[\]]+)` \| `(\w+)` \|", section.group(1), flags=re.M)}
    assert secret_options() == table


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_the_role_readme_names_every_variable(role):
    readme = role / "README.md"
    assert readme.is_file(), "%s has no README.md" % role.name
    text = readme.read_text()
    missing = [name for name in load(role / "defaults" / "main.yml") if not re.search(r"`%s`" % name, text)]
    assert missing == []


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_the_role_readme_has_the_common_sections(role):
    headings = re.findall(r"^## (.+)$", (role / "README.md").read_text(), flags=re.M)
    for section in ("What it does", "Requirements", "Variables", "Dependencies", "Example playbook",
                    "Example inventory", "Tags", "Tested"):
        assert section in headings, section
