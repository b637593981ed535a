"""OpenStack's error bodies, chosen by the path prefix of the API that failed.

FastAPI answers errors as ``{"detail": ...}``; the OpenStack clients read their own services' shapes
(keystoneauth, openstacksdk and the ``openstack`` command show ``message`` from them). The service's own
``/v1`` API keeps FastAPI's shape.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 413: "Request Entity Too Large", 415: "Unsupported Media Type", 422: "Bad Request",
          429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}

# Keystone answers validation errors with 400, never FastAPI's 422.
KEYSTONE_PREFIX = "/identity"


def keystone_error(status: int, message: str, headers=None) -> JSONResponse:
    status = 400 if status == 422 else status
    return JSONResponse({"error": {"code": status, "title": TITLES.get(status, "Error"), "message": message}},
                        status_code=status, headers=headers)


def _message(detail) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # pydantic's errors: "body.auth.identity: Field required; ..."
        return "; ".join("%s: %s" % (".".join(str(p) for p in e.get("loc", ())), e.get("msg", "invalid"))
                         for e in detail if isinstance(e, dict)) or "invalid request"
    return str(detail)


def install(app, default_http_handler, default_validation_handler):
    """Route errors under an OpenStack prefix to that API's shape; everything else to FastAPI's handlers."""

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(KEYSTONE_PREFIX):
            headers = dict(exc.headers or {})
            if exc.status_code == 401:
                # keystoneauth's clients expect Keystone's challenge, not a bearer one.
                headers["WWW-Authenticate"] = 'Keystone uri="%s"' % _identity_root(request)
            return keystone_error(exc.status_code, _message(exc.detail), headers)
        return await default_http_handler(request, exc)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(KEYSTONE_PREFIX):
            return keystone_error(400, "invalid request: " + _message(exc.errors()))
        return await default_validation_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _identity_root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + KEYSTONE_PREFIX
