"""A small real OAuth2 authorization server on loopback, standing in for Microsoft's and
Google's: device authorization (RFC 8628), authorization code with PKCE (RFC 7636), refresh
with rotation, and token introspection (RFC 7662) for Dovecot's oauth2 passdb and the test
SMTP server. The test plays the person: it approves a user code or "visits" the authorize
URL; it can expire access tokens, revoke refresh tokens, and count what was asked.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.services import free_port


@dataclass
class _Device:
    user_code: str
    client_id: str
    scope: str
    expires: float
    approved_as: str | None = None
    denied: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    username: str
    used: bool = False


@dataclass
class OAuthState:
    client_id: str
    client_secret: str | None
    access_lifetime: float
    rotate: bool
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token → (user, expires)
    refresh: dict[str, str] = field(default_factory=dict)  # token → user
    devices: dict[str, _Device] = field(default_factory=dict)  # device_code → state
    codes: dict[str, _Code] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    introspected: list[tuple[str, bool]] = field(default_factory=list)
    slow_down_next: bool = False
    device_error: str | None = None  # e.g. "invalid_scope", as Google answers for Gmail
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/authorize":
            self._json(404, {"error": "not_found"})
            return
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        state = self.server.state
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != state.client_id or query.get("code_challenge_method") != "S256":
            self._json(400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(16)
        with state.lock:
            state.calls["authorize"] += 1
            state.codes[code] = _Code(
                state.client_id, redirect, query["code_challenge"], self.server.signs_in_as
            )
        target = redirect + "?" + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        form = self._form()
        path = urllib.parse.urlsplit(self.path).path
        state = self.server.state
        with state.lock:
            state.calls[path.strip("/")] += 1
            if path == "/devicecode":
                self._device(state, form)
            elif path == "/token":
                self._token(state, form)
            elif path == "/introspect":
                self._introspect(state, form)
            else:
                self._json(404, {"error": "not_found"})

    def _device(self, state: OAuthState, form: dict[str, str]) -> None:
        if form.get("client_id") != state.client_id:
            self._json(400, {"error": "invalid_client"})
            return
        if state.device_error:
            self._json(400, {"error": state.device_error, "error_description": "Invalid device flow scope"})
            return
        device_code = secrets.token_urlsafe(24)
        user_code = secrets.token_hex(4).upper()
        scope = form.get("scope", "")
        state.devices[device_code] = _Device(user_code, state.client_id, scope, time.time() + 600)
        self._json(
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": f"http://127.0.0.1:{self.server.server_port}/device",
                "expires_in": 600,
                "interval": 1,
                "message": f"To sign in, enter the code {user_code}.",
            },
        )

    def _issue(self, state: OAuthState, user: str, old_refresh: str | None) -> None:
        access = "at-" + secrets.token_urlsafe(24)
        state.access[access] = (user, time.time() + state.access_lifetime)
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": state.access_lifetime,
        }
        if old_refresh is None or state.rotate:
            if old_refresh is not None:
                del state.refresh[old_refresh]  # rotation: the old one is spent
            refresh = "rt-" + secrets.token_urlsafe(24)
            state.refresh[refresh] = user
            answer["refresh_token"] = refresh
        self._json(200, answer)

    def _token(self, state: OAuthState, form: dict[str, str]) -> None:
        if form.get("client_id") != state.client_id or (
            state.client_secret is not None and form.get("client_secret") != state.client_secret
        ):
            self._json(401, {"error": "invalid_client"})
            return
        grant = form.get("grant_type")
        state.calls[f"grant:{grant}"] += 1
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            device = state.devices.get(form.get("device_code", ""))
            if device is None or device.denied:
                self._json(400, {"error": "access_denied" if device else "invalid_grant"})
            elif device.expires < time.time():
                self._json(400, {"error": "expired_token"})
            elif state.slow_down_next:
                state.slow_down_next = False
                self._json(400, {"error": "slow_down"})
            elif device.approved_as is None:
                self._json(400, {"error": "authorization_pending"})
            else:
                del state.devices[form["device_code"]]
                self._issue(state, device.approved_as, None)
        elif grant == "refresh_token":
            user = state.refresh.get(form.get("refresh_token", ""))
            if user is None:
                self._json(400, {"error": "invalid_grant", "error_description": "AADSTS70000: token revoked"})
            else:
                self._issue(state, user, form["refresh_token"])
        elif grant == "authorization_code":
            code = state.codes.get(form.get("code", ""))
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
            if (
                code is None
                or code.used
                or code.redirect_uri != form.get("redirect_uri")
                or challenge.decode() != code.challenge
            ):
                self._json(400, {"error": "invalid_grant", "error_description": "bad code or verifier"})
            else:
                code.used = True
                self._issue(state, code.username, None)
        else:
            self._json(400, {"error": "unsupported_grant_type"})

    def _introspect(self, state: OAuthState, form: dict[str, str]) -> None:
        token = form.get("token", "")
        found = state.access.get(token)
        active = found is not None and found[1] > time.time()
        state.introspected.append((token, active))
        self._json(200, {"active": True, "username": found[0]} if active and found else {"active": False})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: OAuthState) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state
        self.signs_in_as = "leads"


class OAuthServer:
    def __init__(
        self,
        *,
        client_id: str = "lms-test-client",
        client_secret: str | None = None,
        access_lifetime: float = 3600,
        rotate: bool = True,
    ) -> None:
        self.state = OAuthState(client_id, client_secret, access_lifetime, rotate)
        self.port = free_port()
        self._server = _Server(self.port, self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, *, access_lifetime: float = 3600, rotate: bool = True) -> None:
        """Forget every token and count (tests sharing one server start from nothing)."""
        old = self.state
        with old.lock:
            self.state = OAuthState(old.client_id, old.client_secret, access_lifetime, rotate)
            self._server.state = self.state

    def oauth_toml(self, *, provider: str = "generic", secret_env: str | None = None) -> str:
        """The [dealers.imap.oauth] table pointing at this server."""
        lines = [
            "[dealers.imap.oauth]",
            f'provider = "{provider}"',
            f'client_id = "{self.state.client_id}"',
            f'device_endpoint = "{self.url}/devicecode"',
            f'token_endpoint = "{self.url}/token"',
            f'authorize_endpoint = "{self.url}/authorize"',
        ]
        if secret_env:
            lines.append(f'client_secret_env = "{secret_env}"')
        return "\n".join(lines) + "\n"

    def start(self) -> OAuthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the person and the provider's admin ---------------------------------------------
    def approve(self, user_code: str, username: str = "leads") -> None:
        with self.state.lock:
            for device in self.state.devices.values():
                if device.user_code == user_code:
                    device.approved_as = username
                    return
        raise AssertionError(f"no pending device code {user_code}")

    def pending_user_codes(self) -> list[str]:
        with self.state.lock:
            return [d.user_code for d in self.state.devices.values() if d.approved_as is None]

    def visit(self, url: str, *, as_user: str = "leads") -> str:
        """What a browser does with the authorize URL: sign in, consent, follow the redirect.
        Returns the address the browser is sent to."""
        self._server.signs_in_as = as_user
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        try:
            connection.request("GET", f"{parts.path}?{parts.query}")
            response = connection.getresponse()
            response.read()
            assert response.status == 302, response.status
            return str(response.getheader("Location"))
        finally:
            connection.close()

    def expire_access_tokens(self) -> None:
        with self.state.lock:
            for token, (user, _) in list(self.state.access.items()):
                self.state.access[token] = (user, 0.0)

    def revoke_refresh_tokens(self) -> None:
        with self.state.lock:
            self.state.refresh.clear()

    def refresh_tokens(self) -> list[str]:
        with self.state.lock:
            return list(self.state.refresh)

    def count(self, call: str) -> int:
        with self.state.lock:
            return self.state.calls[call]
