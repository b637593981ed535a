"""The dashboard: a login page and a single page that uses the same /v1 API as everyone else.

The pages hold no data: the browser reads everything through /v1 with the session cookie, so the
dashboard gets exactly the RBAC of the API. The cookie carries the token: HttpOnly (scripts cannot read
it), SameSite=Strict (no other site's page can make the browser send it, which is the CSRF guard),
Secure over HTTPS, and it lives no longer than the token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from nimbus_api.deps import get_db
from nimbus_api.models import now
from nimbus_api.policy import PolicyRoute, bearer, current_auth, policy
from nimbus_api.routes.auth import issue_from
from nimbus_api.schemas import AuthMethods, PasswordAuth, TokenAuth, TokenOut, TokenRequest
from nimbus_api.security import revoke

HERE = Path(__file__).resolve().parents[1] / "dashboard"
STATIC = HERE / "static"
COOKIE = "nimbus_token"
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(tags=["dashboard"], route_class=PolicyRoute)


class Login(BaseModel):
    user: str
    password: str
    domain: str = "Default"
    project: str | None = None


class Switch(BaseModel):
    project: str


def _set_cookie(request: Request, response: Response, token: str, out: TokenOut):
    response.set_cookie(COOKIE, token, max_age=max(1, int((out.expires_at - now()).total_seconds())), path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")


@router.get("/", include_in_schema=False)
@policy("public")
def root():
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/", response_class=HTMLResponse, include_in_schema=False)
@policy("public")
def app_page(request: Request):
    return templates.TemplateResponse(request, "app.html", {"title": "nimbus.cloud"})


@router.get("/ui/login", response_class=HTMLResponse, include_in_schema=False)
@policy("public")
def login_page(request: Request):
    return templates.TemplateResponse(request, "login.html", {"title": "Log in · nimbus.cloud"})


@router.post("/ui/session", response_model=TokenOut)
@policy("public")
def log_in(body: Login, request: Request, response: Response, db=Depends(get_db)):
    """Password login; the token goes into the session cookie only, never into the page."""
    token, out = issue_from(db, request.app.state.settings, TokenRequest(
        auth=AuthMethods(password=PasswordAuth(user=body.user, password=body.password, domain=body.domain)),
        project=body.project or None))
    _set_cookie(request, response, token, out)
    return out


@router.put("/ui/session", response_model=TokenOut)
@policy("authenticated")
def switch_project(body: Switch, request: Request, response: Response, auth=Depends(current_auth),
                   db=Depends(get_db)):
    """Rescope the session to another of the user's projects; the old token is revoked."""
    token, out = issue_from(db, request.app.state.settings, TokenRequest(
        auth=AuthMethods(token=TokenAuth(id=bearer(request))), project=body.project))
    revoke(db, auth)
    db.commit()
    _set_cookie(request, response, token, out)
    return out


@router.delete("/ui/session", status_code=204)
@policy("authenticated")
def log_out(response: Response, auth=Depends(current_auth), db=Depends(get_db)):
    revoke(db, auth)
    db.commit()
    response.delete_cookie(COOKIE, path="/")
