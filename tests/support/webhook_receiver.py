"""A dealer's system that takes our webhooks: a real HTTP server on a loopback port, in a thread.

It verifies every request's signature as a receiver following the Standard Webhooks
specification would, written here from the specification and not with our own signing code:
HMAC-SHA256 with the secret over ``"{webhook-id}.{webhook-timestamp}.{body}"``, base64, ``v1,``
prefixed, compared in constant time. It answers whatever status the test sets, records every
request (verified or not), and can be stopped and started again on the same port (a receiver
that is down for a while).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    event_id: str
    event: str  # X-LMS-Event
    content_type: str
    body: bytes
    verified: bool
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, port: int, secret: str, *, path: str = "/hook") -> None:
        self.port = port
        self.secret = secret
        self.path = path
        self.status = 200
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def verify(self, headers: Any, body: bytes) -> bool:
        event_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        signed = f"{event_id}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.new(self.secret.encode(), signed, hashlib.sha256).digest()).decode()
        given = [
            s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")
        ]
        return bool(event_id and timestamp.isdigit()) and any(hmac.compare_digest(expected, g) for g in given)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                verified = receiver.verify(self.headers, body)
                status = receiver.status if verified and self.path == receiver.path else 400
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            self.headers.get("webhook-id", ""),
                            self.headers.get("X-LMS-Event", ""),
                            self.headers.get("Content-Type", ""),
                            body,
                            verified,
                            status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def taken(self) -> list[Received]:
        """What was accepted (2xx), in the order it arrived."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def seen(self) -> list[Received]:
        with self._lock:
            return list(self.requests)
