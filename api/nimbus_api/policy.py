"""Who may call what: deny by default.

Every route is a ``PolicyRoute``. A route whose endpoint has no policy (``@policy(...)``) cannot even be
registered, so an unprotected route is a start-up error, not a hole. The policy's guard runs before the
endpoint: it reads the bearer token, checks the rule, and leaves the caller in ``request.state.auth``.

Rules:

``public``        no token (issuing tokens, health)
``authenticated`` any valid token
``admin``         the cloud admin (admin role on the admin project)
``reader`` / ``member`` / ``project_admin``
                  at least that role on the project the token is scoped to; a ``project_id`` path
                  parameter must be that project (the cloud admin passes everywhere)
``self``          the ``user_id`` path parameter is the caller (or the caller is the cloud admin)
"""

from __future__ import annotations

from typing import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute

from nimbus_api.deps import get_db
from nimbus_api.models import RANK
from nimbus_api.security import Auth, TokenError, validate_token

RULES = ("public", "authenticated", "admin", "reader", "member", "project_admin", "self")
MIN_ROLE = {"reader": "reader", "member": "member", "project_admin": "admin"}


def policy(rule: str):
    if rule not in RULES:
        raise ValueError("unknown policy rule %r" % rule)

    def mark(endpoint: Callable):
        endpoint.__nimbus_policy__ = rule
        return endpoint
    return mark


def _unauthorized(detail):
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-auth-token") or request.cookies.get("nimbus_token")


def make_guard(rule: str):
    def guard(request: Request, db=Depends(get_db)):
        if rule == "public":
            request.state.auth = None
            return
        token = bearer(request)
        if not token:
            raise _unauthorized("a token is required")
        try:
            auth = validate_token(db, request.app.state.settings, token)
        except TokenError as e:
            raise _unauthorized(str(e))
        request.state.auth = auth
        if rule == "authenticated" or auth.is_admin:
            return
        if rule == "admin":
            raise HTTPException(status_code=403, detail="only the cloud admin may do this")
        if rule == "self":
            if request.path_params.get("user_id") != auth.user_id:
                raise HTTPException(status_code=403, detail="only the user themself or the cloud admin may do this")
            return
        needed = MIN_ROLE[rule]
        if auth.project_id is None or RANK.get(auth.role or "", 0) < RANK[needed]:
            raise HTTPException(status_code=403, detail="this needs the %s role on a project-scoped token" % needed)
        wanted = request.path_params.get("project_id")
        if wanted is not None and wanted != auth.project_id:
            # Not 404: the caller learns nothing about other projects' resources either way.
            raise HTTPException(status_code=403, detail="the token is scoped to another project")
    return guard


class PolicyRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable, **kwargs):
        rule = getattr(endpoint, "__nimbus_policy__", None)
        if rule is None:
            raise RuntimeError("route %s %s has no policy: every route must say who may call it"
                               % (kwargs.get("methods"), path))
        kwargs["dependencies"] = [Depends(make_guard(rule))] + list(kwargs.get("dependencies") or [])
        super().__init__(path, endpoint, **kwargs)
        self.policy = rule


def current_auth(request: Request) -> Auth | None:
    return request.state.auth
