"""What every request passes before any route sees it, as pure ASGI middleware.

``RequestGuard``: a body larger than ``max_body_bytes`` is refused (413) as soon as its Content-Length
says so, or as soon as the bytes streamed in pass the limit, so no one can make the service buffer more;
a JSON body nested deeper than ``MAX_JSON_DEPTH`` is refused (422) before a parser or validator recurses
into it; a NUL character in the URL or in a JSON string is refused (422): no database, path or command
wants one. It also refuses cross-site requests made with the session cookie (CSRF): a state-changing
request whose token would come from the ``nimbus_token`` cookie, not from an ``Authorization`` or
``X-Auth-Token`` header, must carry an ``Origin`` (or else a ``Referer``) of the service itself. The
dashboard's login (``POST /ui/session``, which sets the cookie) is checked when it carries either.

``SecurityHeaders``: the headers browsers need on every response (CSP, no framing, no sniffing, no
cross-origin referrers).
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from nimbus_api.openstack import errors as openstack_errors

MAX_JSON_DEPTH = 32
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
COOKIE = "nimbus_token"
LOGIN = "/ui/session"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'; object-src 'none'")
# FastAPI's Swagger UI and ReDoc pages load their code from a CDN and start it with an inline script.
DOCS = {"/docs", "/docs/oauth2-redirect", "/redoc"}
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; worker-src 'self' blob:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"same-origin")]

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.I)


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects deeper than ``limit`` (strings do not count)."""
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _origin(url: str):
    """(scheme, host, port) of a URL, or None when it names no origin (``null``, a relative path, junk)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def own_origin(scope, headers: Headers):
    host = headers.get("host")
    if not host and scope.get("server"):
        host = "%s:%s" % tuple(scope["server"])
    return _origin("%s://%s" % (scope.get("scheme", "http"), host or ""))


def csrf_refusal(scope, headers: Headers) -> str | None:
    """Why this request must be refused as possibly cross-site, or None."""
    if scope["method"] not in UNSAFE:
        return None
    if headers.get("authorization", "").lower().startswith("bearer ") or headers.get("x-auth-token"):
        return None  # a header a page of another site cannot make the browser send
    claimed = headers.get("origin") or headers.get("referer")
    login = scope["path"] == LOGIN and scope["method"] == "POST"
    if not login and COOKIE not in cookie_parser(headers.get("cookie", "")):
        return None
    if claimed is None:
        return None if login else "a request made with the session cookie needs an Origin or Referer header"
    if _origin(claimed) is None or _origin(claimed) != own_origin(scope, headers):
        return "cross-origin request refused"
    return None


async def _answer(send, status: int, detail: str, path: str = ""):
    # Under an OpenStack API's prefix, that API's error body (its clients read their own shapes).
    answer = openstack_errors.shaped(path, status, detail)
    status, document = answer if answer is not None else (status, {"detail": detail})
    body = json.dumps(document).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """``streamed``: (method, path regex, limit) of routes that read their body as a stream (image data):
    their body is not read here, only a Content-Length over their own limit is refused."""

    def __init__(self, app, max_body_bytes: int, streamed=()):
        self.app = app
        self.max_body = max_body_bytes
        self.too_large = "the request body is larger than %d bytes" % max_body_bytes
        self.streamed = tuple(streamed)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            return await _answer(send, 422, "NUL characters are not accepted", scope["path"])
        refusal = csrf_refusal(scope, headers)
        if refusal:
            return await _answer(send, 403, refusal, scope["path"])
        length = headers.get("content-length")
        if length is not None and not length.isdigit():
            return await _answer(send, 400, "bad Content-Length", scope["path"])
        for method, path, limit in self.streamed:
            if scope["method"] == method and path.match(scope["path"]):
                if length is not None and int(length) > limit:
                    return await _answer(send, 413, "the request body is larger than %d bytes" % limit,
                                         scope["path"])
                return await self.app(scope, receive, send)
        if length is not None and int(length) > self.max_body:
            return await _answer(send, 413, self.too_large, scope["path"])
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before it finished sending
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await _answer(send, 413, self.too_large, scope["path"])
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        kind = headers.get("content-type", "")
        if body and (not kind or "json" in kind):
            if json_too_deep(body):
                return await _answer(send, 422, "the JSON body nests deeper than %d levels" % MAX_JSON_DEPTH,
                                     scope["path"])
            if _NUL.search(body):
                return await _answer(send, 422, "NUL characters are not accepted", scope["path"])
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # what comes after the body: the client's disconnect

        await self.app(scope, replay, send)


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = DOCS_CSP if scope["path"] in DOCS else CSP

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _value in message.get("headers", [])}
                extra = [(n, v) for n, v in HEADERS + [(b"content-security-policy", csp.encode())]
                         if n not in present]
                message = dict(message, headers=list(message.get("headers", [])) + extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)
