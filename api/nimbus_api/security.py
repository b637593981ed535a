"""Passwords, signing keys and tokens.

Passwords and application credential secrets are stored as Argon2id hashes (a slow, salted KDF).

Tokens are JWTs signed with HS256 by the newest active signing key, named in the header (``kid``). Every
active key validates, so after a rotation the tokens the previous key signed keep working until that key
is retired (as with Keystone's fernet keys). The keys' secrets are stored sealed under the service's secret
key (sealing.py): whoever reads only the database cannot sign a token.

A token is refused when it expired, when its ``jti`` was revoked, when it was issued before its user's
``tokens_valid_after``, and as soon as what it stands on is gone or disabled: its user, the user's domain,
the project it is scoped to or that project's domain, the application credential it came from (deleted
or expired).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import InvalidToken
from sqlalchemy import delete, select

from nimbus_api.models import (RANK, ApplicationCredential, Domain, Project, RevokedToken, SigningKey, User,
                               new_id, now)
from nimbus_api.sealing import seal, unseal

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


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return HASHER.hash(new_secret())


def verify_nothing(secret: str) -> bool:
    """The work of one verification for a user or credential that does not exist, so that how long a refusal
    takes does not tell which names exist. Always False."""
    verify_secret(_dummy_hash(), secret)
    return False


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


# --- keys ---------------------------------------------------------------------

def active_keys(db) -> list[SigningKey]:
    return list(db.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))
                           .order_by(SigningKey.created_at.desc(), SigningKey.id)))


def rotate_keys(db, settings) -> SigningKey:
    """Add a new signing key; it signs from now on, the older ones still validate."""
    key = SigningKey(id=new_id(), sealed=seal(settings, {"secret": secrets.token_hex(32)}), created_at=now())
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


def primary_key(db, settings) -> SigningKey:
    """The newest active key this service can unseal; a new one if there is none (a changed secret key)."""
    for key in active_keys(db):
        try:
            key_secret(settings, key)
            return key
        except TokenError:
            continue
    return rotate_keys(db, settings)


def key_secret(settings, key: SigningKey) -> str:
    try:
        return unseal(settings, key.sealed)["secret"]
    except InvalidToken:
        raise TokenError("token signed by a key sealed under another secret key")


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
    # The application credential the token came from, and whether that credential is unrestricted.
    app_credential_id: str | None = None
    unrestricted: bool = True
    issued_at: datetime | None = None

    @property
    def restricted(self) -> bool:
        """A token from a restricted application credential may not make credentials or change passwords."""
        return self.app_credential_id is not None and not self.unrestricted


def implied_roles(role: str | None) -> list[str]:
    """The role and every role it includes, highest first."""
    return sorted((r for r in RANK if role in RANK and RANK[r] <= RANK[role]), key=RANK.get, reverse=True)


def issue_token(db, settings, user: User, project_id: str | None, role: str | None, is_admin: bool, ttl: int,
                method: str = "password", app_credential: ApplicationCredential | None = None) -> tuple[str, Auth]:
    key = primary_key(db, settings)
    issued = now()
    expires = issued + timedelta(seconds=ttl)
    jti = new_id()
    claims = {"sub": user.id, "name": user.name, "project": project_id, "role": role, "admin": is_admin,
              "iat": int(issued.timestamp()), "exp": int(expires.timestamp()), "jti": jti, "method": method,
              # "iat" is whole seconds; revocation by time needs to tell apart tokens of the same second.
              "iat_us": int(issued.timestamp() * 1e6), "roles": implied_roles(role)}
    if app_credential is not None:
        claims["app_cred"] = app_credential.id
    token = jwt.encode(claims, key_secret(settings, key), algorithm=ALGORITHM, headers={"kid": key.id})
    return token, Auth(user.id, user.name, project_id, role, is_admin, jti, expires, method,
                       app_credential.id if app_credential is not None else None,
                       app_credential.unrestricted if app_credential is not None else True, issued)


def validate_token(db, settings, token: str) -> Auth:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise TokenError("malformed token")
    key = db.get(SigningKey, kid) if kid else None
    if key is None or key.retired_at is not None:
        raise TokenError("token signed by an unknown or retired key")
    try:
        claims = jwt.decode(token, key_secret(settings, key), algorithms=[ALGORITHM],
                            options={"require": ["exp", "iat", "jti", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired")
    except jwt.PyJWTError:
        raise TokenError("invalid token")
    if db.get(RevokedToken, claims["jti"]) is not None:
        raise TokenError("token revoked")
    user = db.get(User, claims["sub"])
    if user is None or not user.enabled:
        raise TokenError("user disabled or deleted")
    if claims.get("iat_us", claims["iat"] * 1000000) < int(aware(user.tokens_valid_after).timestamp() * 1e6):
        raise TokenError("token revoked")
    domain = db.get(Domain, user.domain_id)
    if domain is None or not domain.enabled:
        raise TokenError("the user's domain is disabled or deleted")
    project_id = claims.get("project")
    if project_id is not None:
        project = db.get(Project, project_id)
        if project is None or not project.enabled:
            raise TokenError("the token's project is disabled or deleted")
        project_domain = db.get(Domain, project.domain_id)
        if project_domain is None or not project_domain.enabled:
            raise TokenError("the token's project's domain is disabled or deleted")
    cred_id, unrestricted = claims.get("app_cred"), True
    if cred_id is not None or claims.get("method") == "application_credential":
        cred = db.get(ApplicationCredential, cred_id) if cred_id else None
        if cred is None or cred.user_id != user.id or expired(cred):
            raise TokenError("the token's application credential is deleted or expired")
        unrestricted = cred.unrestricted
    return Auth(user.id, claims.get("name", user.name), project_id, claims.get("role"),
                bool(claims.get("admin")), claims["jti"], datetime.fromtimestamp(claims["exp"], timezone.utc),
                claims.get("method", "password"), cred_id, unrestricted,
                datetime.fromtimestamp(claims.get("iat_us", claims["iat"] * 1000000) / 1e6, timezone.utc))


def expired(cred: ApplicationCredential) -> bool:
    return cred.expires_at is not None and aware(cred.expires_at) <= now()


def revoke(db, auth: Auth) -> None:
    if db.get(RevokedToken, auth.token_id) is None:
        db.add(RevokedToken(jti=auth.token_id, expires_at=auth.expires_at))
    # Revocations of expired tokens are dead weight: they fail on expiry anyway.
    db.execute(delete(RevokedToken).where(RevokedToken.expires_at < now()))
