"""Request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nimbus_api.identity import check_endpoint_url

Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
Role = Literal["admin", "member", "reader"]


class PasswordAuth(BaseModel):
    # The user's name in ``domain``, or its id (Keystone v3 takes either).
    user: str | None = None
    user_id: str | None = None
    password: str
    domain: str = "Default"

    @model_validator(mode="after")
    def _one_user(self):
        if (self.user is None) == (self.user_id is None):
            raise ValueError("give the user's name or its id")
        return self


class AppCredentialAuth(BaseModel):
    id: str
    secret: str


class TokenAuth(BaseModel):
    id: str


class AuthMethods(BaseModel):
    password: PasswordAuth | None = None
    application_credential: AppCredentialAuth | None = None
    token: TokenAuth | None = None


class TokenRequest(BaseModel):
    auth: AuthMethods
    # A project id, or a name in ``project_domain`` (default: the user's own domain); none gives an unscoped
    # token.
    project: str | None = None
    project_domain: str | None = None


class TokenOut(BaseModel):
    token: str | None = None
    user_id: str
    user: str
    project_id: str | None
    role: str | None
    is_admin: bool
    expires_at: datetime
    method: str


class DomainIn(BaseModel):
    name: str = Name
    description: str = ""
    enabled: bool = True


class DomainPatch(BaseModel):
    description: str | None = None
    enabled: bool | None = None


class DomainOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    description: str
    enabled: bool


class ProjectIn(BaseModel):
    name: str = Name
    domain: str = "Default"
    description: str = ""
    enabled: bool = True


class ProjectPatch(BaseModel):
    description: str | None = None
    enabled: bool | None = None


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    domain_id: str
    description: str
    enabled: bool


class UserIn(BaseModel):
    name: str = Name
    domain: str = "Default"
    password: str = Field(min_length=8, max_length=256)
    enabled: bool = True


class UserPatch(BaseModel):
    password: str | None = Field(default=None, min_length=8, max_length=256)
    # Needed to change one's own password (Keystone's POST /v3/users/{id}/password); the cloud admin
    # resetting someone else's password gives none.
    original_password: str | None = Field(default=None, max_length=256)
    # true also unlocks an account locked by failed logins.
    enabled: bool | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    domain_id: str
    enabled: bool


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    user_id: str
    project_id: str
    role: str


class AppCredentialIn(BaseModel):
    name: str = Name
    project_id: str
    expires_at: datetime | None = None
    # The highest role its tokens carry; default: the user's role on the project now, never more.
    role: Role | None = None
    # Only an unrestricted credential's tokens may make application credentials or change passwords.
    unrestricted: bool = False


class AppCredentialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    user_id: str
    project_id: str
    expires_at: datetime | None
    role: str
    unrestricted: bool
    # Shown once, when the credential is made.
    secret: str | None = None


class ServiceIn(BaseModel):
    name: str = Name
    type: str = Name
    description: str = ""


class EndpointIn(BaseModel):
    interface: Literal["public", "internal", "admin"]
    url: str = Field(min_length=1, max_length=255)
    region: str = Field(default="RegionOne", min_length=1, max_length=64)

    @field_validator("url")
    @classmethod
    def _registrable(cls, url: str) -> str:
        return check_endpoint_url(url)


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    interface: str
    region: str
    url: str


class ServiceOut(BaseModel):
    id: str
    name: str
    type: str
    description: str
    endpoints: list[EndpointOut]


class KeysOut(BaseModel):
    active: list[str]
    retired: list[str] = []
