"""The pane under uvicorn in a thread of ``lms run`` / ``lms web``: the socket is bound in the
caller (a taken port is an error at start, not a dying thread), signals stay with the main
thread (uvicorn installs none outside it), and :meth:`WebServer.stop` ends it cleanly."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from web.app import create_app
from web.context import WebContext


class WebServer:
    def __init__(self, ctx: WebContext, host: str, port: int) -> None:
        self.ctx = ctx
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(ctx),
            log_config=None,  # our logging setup stays in charge
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
            # Bounded: connections at once (more get 503), idle keep-alive, header size.
            limit_concurrency=256,
            timeout_keep_alive=5,
            h11_max_incomplete_event_size=16 * 1024,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="lms-web"
        )

    def start(self, timeout: float = 10.0) -> WebServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
