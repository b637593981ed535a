"""tools/host-python/nimbus_zipimport_cache.py: the test hosts' Python keeps the bytecode of modules imported from
zip archives (Ansible's module payloads), reads it back for the same source only, names the code after the
archive it came from this time, and trusts no cache directory another user could write to.

Each case runs in a Python of its own, so the patch never touches this process's zipimport.
"""

import json
import marshal
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HOOK_DIR = REPO / "tools" / "host-python"

# Counts the compiles the hook asks zipimport for, then imports the module from the archive given.
PROBE = """
import json, sys, zipimport
compiled = []
original = zipimport._compile_source
def counting(pathname, source):
    compiled.append(pathname)
    return original(pathname, source)
zipimport._compile_source = counting
import nimbus_zipimport_cache
sys.path.insert(0, sys.argv[1])
import payload
print(json.dumps({"compiled": len(compiled), "answer": payload.answer(), "file": payload.where()}))
"""


def archive(path: Path, answer: int) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("payload.py", "def answer():\n    return %d\n\ndef where():\n    return where.__code__.co_filename\n"
                   % answer)
    return path


def probe(home: Path, zip_path: Path) -> dict:
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(HOOK_DIR), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-c", PROBE, str(zip_path)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_the_second_run_of_the_same_source_compiles_nothing_and_names_its_own_archive(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    first = probe(home, archive(tmp_path / "one.zip", 7))
    assert (first["compiled"], first["answer"]) == (1, 7)
    assert (home / ".cache" / "nimbus-zipimport").stat().st_mode & 0o777 == 0o700
    second = probe(home, archive(tmp_path / "two.zip", 7))
    assert (second["compiled"], second["answer"]) == (0, 7)
    assert second["file"] == str(tmp_path / "two.zip" / "payload.py")


def test_a_different_source_is_compiled_not_taken_from_the_cache(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    probe(home, archive(tmp_path / "one.zip", 7))
    changed = probe(home, archive(tmp_path / "two.zip", 8))
    assert (changed["compiled"], changed["answer"]) == (1, 8)


def test_a_cache_others_may_write_to_is_never_read(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    probe(home, archive(tmp_path / "one.zip", 7))
    cache = home / ".cache" / "nimbus-zipimport"
    # Someone else's bytecode for the same source: it would answer 666 if it were run.
    planted = compile("def answer():\n    return 666\n\ndef where():\n    return ''\n", "planted", "exec")
    for entry in cache.iterdir():
        entry.write_bytes(marshal.dumps(planted))
    cache.chmod(0o777)
    run = probe(home, archive(tmp_path / "two.zip", 7))
    # (zipimport compiles a module twice when nothing caches it: for its file name, then for its code.)
    assert run["answer"] == 7 and run["compiled"] > 0


def test_a_broken_entry_is_compiled_again(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    probe(home, archive(tmp_path / "one.zip", 7))
    for entry in (home / ".cache" / "nimbus-zipimport").iterdir():
        entry.write_bytes(b"not bytecode")
    run = probe(home, archive(tmp_path / "two.zip", 7))
    assert (run["compiled"], run["answer"]) == (1, 7)
