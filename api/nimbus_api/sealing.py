"""Credentials and token signing keys at rest: sealed with Fernet (AES-128-CBC + HMAC) under the service's
secret key. Also the owner-only files and directories the service keeps its state in."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet


def private_dir(path) -> Path:
    """Make a directory only its owner can enter (0700, whatever the umask); an existing one keeps its mode,
    which the deployment (the api role) owns."""
    path = Path(path)
    if not path.is_dir():
        if not path.parent.is_dir():
            private_dir(path.parent)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            return path
        os.chmod(path, 0o700)
    return path


def write_private(path, text: str) -> None:
    """Write a file only its owner can read (0600, whatever the umask), replacing its content."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def private_file(path) -> bool:
    """Create an empty file only its owner can read (0600, whatever the umask); False if it already existed."""
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.fchmod(fd, 0o600)
    os.close(fd)
    return True


def secret_key(settings) -> bytes:
    if settings.secret_key:
        return fernet_key(settings.secret_key)
    return _key_file(str(Path(settings.state_dir) / "secret.key"))


@lru_cache(maxsize=16)
def _key_file(name: str) -> bytes:
    """The generated key in the state directory, made on first use; read once per process, since every
    token check unseals a signing key with it."""
    path = Path(name)
    if not path.exists():
        private_dir(path.parent)
        # Written aside and linked into place, so a second process never reads a half-written key and the
        # first one to link wins.
        fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".secret.key.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return path.read_bytes().strip()


def fernet_key(secret: str) -> bytes:
    """A Fernet key as is; any other secret (a generated password, say) is stretched into one by SHA-256,
    so deployments can share a plain random string between nodes."""
    try:
        if len(base64.urlsafe_b64decode(secret.encode())) == 32:
            return secret.encode()
    except (ValueError, binascii.Error):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


@lru_cache(maxsize=16)
def _fernet(key: bytes) -> Fernet:
    return Fernet(key)


def seal(settings, secrets: dict) -> str:
    return _fernet(secret_key(settings)).encrypt(json.dumps(secrets).encode()).decode()


def unseal(settings, sealed: str) -> dict:
    return json.loads(_fernet(secret_key(settings)).decrypt(sealed.encode()))
