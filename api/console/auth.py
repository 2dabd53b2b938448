"""Signing in and out, and the two doors of every console route: a viewer's (read) and an operator's (act).

An action is accepted only from a signed-in operator, with the session's CSRF token in the form, and from
this site (an ``Origin`` header, when the browser sends one, must be this server's). The cookie is HttpOnly
and SameSite=Strict, so another site's page can neither read it nor make the browser send it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import RedirectResponse, Response

from conveyor.api.console.rendering import render
from conveyor.api.console.session import COOKIE_NAME, Session, Sessions

router = APIRouter(prefix="/ui")
FORM_TYPE = "application/x-www-form-urlencoded"


class LoginRequired(Exception):
    """No valid session: the browser is sent to the sign-in form, and back to ``target`` after it."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


class Refused(Exception):
    """A request the console refuses, shown as a page with ``status_code`` and ``message``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code, self.message = status_code, message


@dataclass(frozen=True)
class Form:
    """A posted form's fields (each name may repeat, as checkboxes do)."""

    fields: dict[str, list[str]]

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self.fields.get(name, [])


@dataclass(frozen=True)
class Action:
    """An accepted action: the operator's session and the form it posted."""

    session: Session
    form: Form


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


async def viewer(request: Request) -> Session:
    """The request's session (kept on ``request.state`` for the templates), or :class:`LoginRequired`."""
    session = sessions_of(request).read(request.cookies.get(COOKIE_NAME))
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    request.state.session = session
    return session


async def operator(request: Request, session: Annotated[Session, Depends(viewer)]) -> Action:
    """An action's door: this site, an operator's session, and the session's CSRF token; 403 otherwise."""
    form = await read_form(request)
    if not session.may_act:
        raise Refused(status.HTTP_403_FORBIDDEN, "This sign-in may only read: actions need a read-write token.")
    return Action(session, _signed(session, form))


def _signed(session: Session, form: Form) -> Form:
    """``form`` if it carries the session's CSRF token; 403 otherwise."""
    if not Sessions.csrf_matches(session, form.first("csrf")):
        raise Refused(status.HTTP_403_FORBIDDEN, "The form's CSRF token is missing or wrong: reload the page.")
    return form


async def read_form(request: Request) -> Form:
    """The posted form, refused unless it is a urlencoded form from this site."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Refused(status.HTTP_403_FORBIDDEN, f"Refused a form posted from another site ({origin}).")
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM_TYPE:
        raise Refused(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"A console form is posted as {FORM_TYPE}.")
    body = (await request.body()).decode("utf-8", errors="replace")
    return Form(parse_qs(body, keep_blank_values=True))


def safe_target(target: str | None) -> str:
    """Where to go after signing in: a console path of this site, never another site's address."""
    if target and target.startswith("/ui") and not target.startswith("/ui/login") and "\\" not in target:
        return target
    return "/ui"


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", target=safe_target(next))


@router.post("/login")
async def login(request: Request) -> Response:
    """Exchange an API token for a session cookie; 401 with the form again for an unknown token."""
    form = await read_form(request)
    target = safe_target(form.first("next"))
    cookie = sessions_of(request).open(form.first("token") or "")
    if cookie is None:
        return render(request, "login.html", status_code=401, target=target, error="Unknown token.")
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(COOKIE_NAME, cookie, max_age=sessions_of(request).lifetime_seconds, path="/ui",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
    return response


@router.post("/logout")
async def logout(request: Request, session: Annotated[Session, Depends(viewer)]) -> Response:
    _signed(session, await read_form(request))
    response = RedirectResponse("/ui/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE_NAME, path="/ui", httponly=True, samesite="strict")
    return response


def login_redirect(target: str) -> Response:
    return RedirectResponse(f"/ui/login?{urlencode({'next': target})}", status_code=status.HTTP_303_SEE_OTHER)
