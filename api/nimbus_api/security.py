"""Passwords, signing keys and tokens.

Passwords and application credential secrets are stored as Argon2id hashes (a slow, salted KDF).

Tokens are JWTs signed with HS256 by the newest active signing key, named in the header (``kid``). Every
active key validates, so after a rotation the tokens the previous key signed keep working until that key
is retired (as with Keystone's fernet keys). A token is refused when it expired, when its ``jti`` was
revoked, or when it was issued before its user's ``tokens_valid_after``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from nimbus_api.models import RevokedToken, SigningKey, User, new_id, now

HASHER = PasswordHasher()
ALGORITHM = "HS256"


class TokenError(Exception):
    """The token cannot be used; the message says why, without echoing the token."""


def hash_secret(secret: str) -> str:
    return HASHER.hash(secret)


def verify_secret(stored: str, secret: str) -> bool:
    try:
        return HASHER.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# --- keys ---------------------------------------------------------------------

def active_keys(db) -> list[SigningKey]:
    return list(db.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))
                           .order_by(SigningKey.created_at.desc(), SigningKey.id)))


def rotate_keys(db) -> SigningKey:
    """Add a new signing key; it signs from now on, the older ones still validate."""
    key = SigningKey(id=new_id(), secret=secrets.token_hex(32), created_at=now())
    db.add(key)
    db.flush()
    return key


def retire_keys(db, keep: int = 1) -> list[str]:
    """Retire all but the ``keep`` newest keys: tokens they signed stop validating."""
    keys = active_keys(db)
    retired = []
    for key in keys[keep:]:
        key.retired_at = now()
        retired.append(key.id)
    return retired


def primary_key(db) -> SigningKey:
    keys = active_keys(db)
    return keys[0] if keys else rotate_keys(db)


# --- tokens -------------------------------------------------------------------

@dataclass
class Auth:
    """Who is calling: the user, the project the token is scoped to, and their role there."""

    user_id: str
    user_name: str
    project_id: str | None
    role: str | None
    is_admin: bool
    token_id: str
    expires_at: datetime
    method: str


def issue_token(db, user: User, project_id: str | None, role: str | None, is_admin: bool, ttl: int,
                method: str = "password") -> tuple[str, Auth]:
    key = primary_key(db)
    issued = now()
    expires = issued + timedelta(seconds=ttl)
    jti = new_id()
    claims = {"sub": user.id, "name": user.name, "project": project_id, "role": role, "admin": is_admin,
              "iat": int(issued.timestamp()), "exp": int(expires.timestamp()), "jti": jti, "method": method,
              # "iat" is whole seconds; revocation by time needs to tell apart tokens of the same second.
              "iat_us": int(issued.timestamp() * 1e6)}
    token = jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.id})
    return token, Auth(user.id, user.name, project_id, role, is_admin, jti, expires, method)


def validate_token(db, token: str) -> Auth:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise TokenError("malformed token")
    key = db.get(SigningKey, kid) if kid else None
    if key is None or key.retired_at is not None:
        raise TokenError("token signed by an unknown or retired key")
    try:
        claims = jwt.decode(token, key.secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "jti", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired")
    except jwt.PyJWTError:
        raise TokenError("invalid token")
    if db.get(RevokedToken, claims["jti"]) is not None:
        raise TokenError("token revoked")
    user = db.get(User, claims["sub"])
    if user is None or not user.enabled:
        raise TokenError("user disabled or deleted")
    valid_after = user.tokens_valid_after
    if valid_after.tzinfo is None:
        valid_after = valid_after.replace(tzinfo=timezone.utc)
    if claims.get("iat_us", claims["iat"] * 1000000) < int(valid_after.timestamp() * 1e6):
        raise TokenError("token revoked")
    return Auth(user.id, claims.get("name", user.name), claims.get("project"), claims.get("role"),
                bool(claims.get("admin")), claims["jti"], datetime.fromtimestamp(claims["exp"], timezone.utc),
                claims.get("method", "password"))


def revoke(db, auth: Auth) -> None:
    if db.get(RevokedToken, auth.token_id) is None:
        db.add(RevokedToken(jti=auth.token_id, expires_at=auth.expires_at))
    # Revocations of expired tokens are dead weight: they fail on expiry anyway.
    db.execute(delete(RevokedToken).where(RevokedToken.expires_at < now()))
