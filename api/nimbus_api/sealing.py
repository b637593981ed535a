"""Credentials at rest: sealed with Fernet (AES-128-CBC + HMAC) under the service's secret key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os

from cryptography.fernet import Fernet


def secret_key(settings) -> bytes:
    if settings.secret_key:
        return fernet_key(settings.secret_key)
    path = settings.state_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
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


def seal(settings, secrets: dict) -> str:
    return Fernet(secret_key(settings)).encrypt(json.dumps(secrets).encode()).decode()


def unseal(settings, sealed: str) -> dict:
    return json.loads(Fernet(secret_key(settings)).decrypt(sealed.encode()))
