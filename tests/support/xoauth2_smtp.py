"""A real SMTP submission server on loopback that speaks STARTTLS (test CA certificate) and
AUTH XOAUTH2, checking every bearer token at the test's OAuth2 server (RFC 7662
introspection), as Microsoft 365 and Gmail do with theirs. It refuses mail before AUTH.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult

from tests.support.sink import Received
from tests.support.tls import ServerCert


def _introspect(url: str, token: str) -> dict[str, Any]:
    body = urllib.parse.urlencode({"token": token}).encode()
    with urllib.request.urlopen(url, data=body, timeout=5) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@dataclass
class XOAuth2Handler:
    introspection_url: str
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        if len(args) == 2:
            blob = base64.b64decode(args[1])
        else:
            answer = await server.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            blob = bytes(answer)
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        loop = asyncio.get_running_loop()
        verdict = await loop.run_in_executor(None, _introspect, self.introspection_url, token)
        accepted = bool(verdict.get("active")) and verdict.get("username") == user
        with self.lock:
            self.logins.append((user, accepted))
        if accepted:
            return AuthResult(success=True, auth_data=user)
        # XOAUTH2: an error is a 334 with a JSON status; the client answers with an empty line.
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.example/"})
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Authentication failed")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from or "", list(envelope.rcpt_tos), bytes(envelope.original_content))
            )
        return "250 2.0.0 OK"


class XOAuth2SmtpServer:
    def __init__(self, port: int, cert: ServerCert, introspection_url: str) -> None:
        self.port = port
        self.handler = XOAuth2Handler(introspection_url)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert.cert_file, cert.key_file)
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=port,
            server_hostname="localhost",
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )

    def start(self) -> XOAuth2SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Received]:
        with self.handler.lock:
            return [m for m in self.handler.messages if address in m.recipients]

    @property
    def logins(self) -> list[tuple[str, bool]]:
        with self.handler.lock:
            return list(self.handler.logins)
