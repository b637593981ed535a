"""Bytecode for modules Python imports from zip archives, kept between runs: the test bed's container hosts only.

Each Ansible module run ships its code as a zip (AnsiballZ) that Python imports with zipimport, which compiles
every ``.py`` it imports from the archive on every run, and Python 3.11's twice (once for the module's file
name, once for its code): about a third of a no-op module run's CPU on these hosts (0.42 s against 0.28 s for
``stat``). This keeps the compiled code of each source text, so that a later compile of the same source
unmarshals it instead. What a module
does is unchanged: the code object is the one ``compile`` makes from the same source (only its file name is set to
the archive it was imported from this time, for tracebacks).

tools/testbed installs it into the base image with a ``.pth`` line that imports it when Python starts. The cache
is the running user's own (``~/.cache/nimbus-zipimport``); a directory that someone else owns or may write to
is never read, and any failure falls back to compiling.
"""

import hashlib
import marshal
import os
import sys
import zipimport

_compile_source = getattr(zipimport, "_compile_source", None)
_CODE = type(compile("", "", "exec"))
_TAG = ("%s-%d" % (sys.implementation.cache_tag, sys.flags.optimize)).encode()


def _cache_dir():
    path = os.path.join(os.path.expanduser("~"), ".cache", "nimbus-zipimport")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return None
    # Only a directory of this user's that nobody else may write to: bytecode read from it is run.
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None
    return path


def _named(code, filename):
    consts = tuple(_named(c, filename) if isinstance(c, _CODE) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _cached_compile(pathname, source):
    directory = _cache_dir()
    if directory is None:
        return _compile_source(pathname, source)
    entry = os.path.join(directory, hashlib.sha256(_TAG + b"\0" + source).hexdigest())
    try:
        with open(entry, "rb") as f:
            cached = marshal.loads(f.read())
        if isinstance(cached, _CODE):
            return _named(cached, pathname)
    except (OSError, ValueError, EOFError, TypeError):
        pass
    code = _compile_source(pathname, source)
    partial = "%s.%d" % (entry, os.getpid())
    try:
        with open(partial, "wb") as f:
            f.write(marshal.dumps(code))
        os.replace(partial, entry)
    except OSError:
        try:
            os.unlink(partial)
        except OSError:
            pass
    return code


if _compile_source is not None:
    zipimport._compile_source = _cached_compile
