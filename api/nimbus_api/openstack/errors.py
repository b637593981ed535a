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
NOVA_PREFIX = "/compute"
GLANCE_PREFIX = "/image"
NEUTRON_PREFIX = "/networking"
CINDER_PREFIX = "/volume"
OPENSTACK_PREFIXES = (KEYSTONE_PREFIX, NOVA_PREFIX, GLANCE_PREFIX, NEUTRON_PREFIX, CINDER_PREFIX)
# Neutron's exception names by status (neutron_lib.exceptions), what openstacksdk shows with the message.
NEUTRON_TYPES = {400: "BadRequest", 401: "NotAuthorized", 403: "PolicyNotAuthorized", 404: "NotFound",
                 405: "MethodNotAllowed", 409: "Conflict", 413: "RequestEntityTooLarge", 503: "ServiceUnavailable"}
# Nova's fault names by status (nova.api.openstack.wsgi); any other status is a computeFault. Cinder's are the
# same (cinder.api.openstack.wsgi), with computeFault.
NOVA_FAULTS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
               409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 429: "overLimit",
               501: "notImplemented", 503: "serviceUnavailable"}


def shaped(path: str, status: int, message: str) -> tuple[int, dict] | None:
    """The status and body an OpenStack API under ``path`` answers an error with; None outside them."""
    status = 400 if status == 422 else status
    if path.startswith(KEYSTONE_PREFIX):
        return status, {"error": {"code": status, "title": TITLES.get(status, "Error"), "message": message}}
    if path.startswith(NOVA_PREFIX):
        return status, {NOVA_FAULTS.get(status, "computeFault"): {"code": status, "message": message}}
    if path == CINDER_PREFIX or path.startswith(CINDER_PREFIX + "/"):
        return status, {NOVA_FAULTS.get(status, "computeFault"): {"code": status, "message": message}}
    if path == NEUTRON_PREFIX or path.startswith(NEUTRON_PREFIX + "/"):
        return status, {"NeutronError": {"type": NEUTRON_TYPES.get(status, "NeutronException"), "message": message,
                                         "detail": ""}}
    if path == GLANCE_PREFIX or path.startswith(GLANCE_PREFIX + "/"):
        return status, {"code": status, "title": TITLES.get(status, "Error"), "message": message}
    return None


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
        answer = shaped(request.url.path, exc.status_code, _message(exc.detail))
        if answer is None:
            return await default_http_handler(request, exc)
        headers = dict(exc.headers or {})
        if exc.status_code == 401 and request.url.path.startswith(OPENSTACK_PREFIXES):
            # keystoneauth's clients expect Keystone's challenge, not a bearer one.
            headers["WWW-Authenticate"] = 'Keystone uri="%s"' % _identity_root(request)
        return JSONResponse(answer[1], status_code=answer[0], headers=headers)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        answer = shaped(request.url.path, 400, "Invalid input: " + _message(exc.errors()))
        if answer is None:
            return await default_validation_handler(request, exc)
        return JSONResponse(answer[1], status_code=answer[0])

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _identity_root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + KEYSTONE_PREFIX
