"""Console sign-in: a cookie that proves its holder knew an API token, and the CSRF token bound to it.

The cookie holds ``role.issued.nonce.mac``, where ``mac`` is an HMAC keyed by the token itself: no server
secret to manage, and removing a token from the settings ends every session opened with it. The CSRF token
is another HMAC of the same nonce, so a page's forms carry a value no other site can compute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import SecretStr

from conveyor.api.settings import ApiSettings

COOKIE_NAME = "conveyor_session"


class Role(StrEnum):
    """What a session may do: an operator signed in with a read-write token, a viewer with a read-only one."""

    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Session:
    role: Role
    #: The value every form of this session posts back (see :meth:`Sessions.csrf_matches`).
    csrf: str

    @property
    def may_act(self) -> bool:
        """Whether retry, cancel, replay and the other actions are offered and accepted."""
        return self.role is Role.OPERATOR


class Sessions:
    """Opens and reads session cookies for the tokens in ``settings``."""

    def __init__(self, settings: ApiSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._tokens = {Role.OPERATOR: settings.tokens, Role.VIEWER: settings.read_only_tokens}
        self._lifetime = settings.console_session_hours * 3600
        self._clock = clock

    @property
    def lifetime_seconds(self) -> int:
        return int(self._lifetime)

    def open(self, token: str) -> str | None:
        """A cookie value for a known ``token``; None for an unknown one."""
        for role, candidates in self._tokens.items():
            for candidate in candidates:
                if hmac.compare_digest(token.encode(), candidate.get_secret_value().encode()):
                    claims = f"{role.value}.{int(self._clock())}.{secrets.token_urlsafe(12)}"
                    return f"{claims}.{_mac(candidate, 'session.' + claims)}"
        return None

    def read(self, cookie: str | None) -> Session | None:
        """The session ``cookie`` proves, or None (absent, forged, expired, or its token removed)."""
        parts = (cookie or "").split(".")
        if len(parts) != 4 or parts[0] not in Role._value2member_map_ or not parts[1].isdigit():
            return None
        role, issued, nonce, mac = Role(parts[0]), int(parts[1]), parts[2], parts[3]
        if not 0 <= self._clock() - issued <= self._lifetime:
            return None
        claims = f"{role.value}.{issued}.{nonce}"
        for candidate in self._tokens[role]:
            if hmac.compare_digest(mac, _mac(candidate, "session." + claims)):
                return Session(role, csrf=_mac(candidate, "csrf." + nonce))
        return None

    @staticmethod
    def csrf_matches(session: Session, submitted: str | None) -> bool:
        return submitted is not None and hmac.compare_digest(session.csrf.encode(), submitted.encode())


def _mac(token: SecretStr, message: str) -> str:
    digest = hmac.new(token.get_secret_value().encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
