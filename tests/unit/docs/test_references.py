"""Every nimbus.cloud.NAME the documentation points at exists: README, docs/, the role READMEs and the modules' own
documentation (seealso, M() references, examples)."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parents[3]
REFERENCE = re.compile(r"(?<![\w.])nimbus\.cloud\.([\w-]*\w)")


def known_names():
    names = {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}
    # Ansible finds a collection's playbook by name only when the name is an identifier (no '-').
    names |= {p.stem for p in (ROOT / "playbooks").glob("*.yml") if p.stem.isidentifier()}
    for kind in ("modules", "action", "inventory", "doc_fragments"):
        names |= {p.stem for p in (ROOT / "plugins" / kind).glob("*.py") if not p.stem.startswith("_")}
    names |= {p.stem for p in (ROOT / "plugins" / "filter").glob("*.yml")}
    return names


DOCUMENTS = sorted(
    [ROOT / "README.md"] + list((ROOT / "docs").glob("*.md")) + list((ROOT / "roles").glob("*/README.md"))
    + list((ROOT / "plugins" / "modules").glob("*.py")) + list((ROOT / "plugins" / "filter").glob("*.yml"))
    + list((ROOT / "plugins" / "inventory").glob("*.py")) + list((ROOT / "plugins" / "action").glob("*.py")))


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_referenced_name_exists(document):
    missing = sorted(set(REFERENCE.findall(document.read_text())) - known_names())
    assert missing == [], "%s names what the collection does not have" % document.relative_to(ROOT)
