"""Login and sessions: request tokens (single use, short-lived), access tokens and their expiry.

An expired or invalidated access token fails every REST call and every new ticker handshake; sockets
already open stay open, because Kite does not close them at expiry (KITE.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ticker_service.fakekite.errors import (
    INVALID_API_KEY,
    INVALID_CHECKSUM,
    INVALID_REQUEST_TOKEN,
    token_error,
)
from ticker_service.fakekite.timefmt import kite_timestamp, now_ist


@dataclass
class Session:
    access_token: str
    user_id: str
    login_time: datetime
    public_token: str = field(default_factory=lambda: secrets.token_hex(16))
    enctoken: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    active: bool = True


@dataclass
class _RequestToken:
    issued: float
    used: bool = False


def session_checksum(api_key: str, token: str, api_secret: str) -> str:
    return hashlib.sha256((api_key + token + api_secret).encode()).hexdigest()


class Sessions:
    def __init__(
        self,
        api_key: str,
        api_secret: str,
        user_id: str,
        *,
        request_token_ttl: float,
        profile: dict[str, Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.user_id = user_id
        self.request_token_ttl = request_token_ttl
        self.profile = profile
        self._clock = clock
        self._request_tokens: dict[str, _RequestToken] = {}
        self._sessions: dict[str, Session] = {}

    def issue_request_token(self) -> str:
        """What a successful login on Kite's page hands to the redirect URL."""
        token = _kite_token()
        self._request_tokens[token] = _RequestToken(self._clock())
        return token

    def exchange(self, api_key: str, request_token: str, checksum: str) -> Session:
        """`POST /session/token`: a request token, once, within its life, with a checksum that verifies."""
        if api_key != self.api_key:
            raise token_error(INVALID_API_KEY)
        entry = self._request_tokens.get(request_token)
        if entry is None or entry.used or self._clock() - entry.issued > self.request_token_ttl:
            raise token_error(INVALID_REQUEST_TOKEN)
        expected = session_checksum(self.api_key, request_token, self.api_secret)
        if not hmac.compare_digest(expected, checksum):
            raise token_error(INVALID_CHECKSUM)
        entry.used = True
        return self.issue_session()

    def issue_session(self, access_token: str | None = None) -> Session:
        session = Session(access_token or _kite_token(), self.user_id, now_ist())
        self._sessions[session.access_token] = session
        return session

    def valid(self, access_token: str) -> bool:
        session = self._sessions.get(access_token)
        return session is not None and session.active

    def authenticate(self, authorization: str | None) -> Session:
        """`Authorization: token api_key:access_token`, or 403 TokenException."""
        if not authorization or not authorization.startswith("token "):
            raise token_error()
        api_key, _, access_token = authorization[len("token ") :].partition(":")
        session = self._sessions.get(access_token)
        if api_key != self.api_key or session is None or not session.active:
            raise token_error()
        return session

    def expire(self, access_token: str | None = None) -> int:
        """End one session, or every session (the morning expiry); the number ended."""
        ended = 0
        for token, session in self._sessions.items():
            if session.active and (access_token is None or token == access_token):
                session.active = False
                ended += 1
        return ended

    def session_json(self, session: Session) -> dict[str, Any]:
        """The session as `generate_session` returns it (`generate_session.json`)."""
        return {
            **{k: v for k, v in self.profile.items() if k != "user_id"},
            "user_id": session.user_id,
            "api_key": self.api_key,
            "access_token": session.access_token,
            "public_token": session.public_token,
            "enctoken": session.enctoken,
            "refresh_token": "",
            "silo": "",
            "login_time": kite_timestamp(session.login_time),
        }


def default_profile(user_id: str) -> dict[str, Any]:
    """`GET /user/profile` (`user_profile.json`)."""
    return {
        "user_id": user_id,
        "user_type": "individual",
        "email": f"{user_id.lower()}@example.com",
        "user_name": "Fake Kite User",
        "user_shortname": "Fake",
        "broker": "ZERODHA",
        "exchanges": ["BFO", "MCX", "NSE", "CDS", "BSE", "BCD", "MF", "NFO"],
        "products": ["CNC", "NRML", "MIS", "BO", "CO"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
        "avatar_url": None,
        "meta": {"demat_consent": "physical"},
    }


def _kite_token() -> str:
    """32 alphanumeric characters, as Kite's request and access tokens are (a URL-safe token may
    start with "-", which a command line would take for an option)."""
    return secrets.token_hex(16)
