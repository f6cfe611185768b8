"""A man in the middle for IMAP on loopback: it removes STARTTLS from what the server
advertises ("strip"), or answers the client's STARTTLS itself with BAD ("refuse"), and
records everything the client sent, so a test can show that no credential crossed in clear.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading

STARTTLS_WORD = re.compile(rb" STARTTLS\b", re.IGNORECASE)
STARTTLS_COMMAND = re.compile(rb"^(\S+) STARTTLS\r?\n$", re.IGNORECASE)


class StarttlsStripper:
    def __init__(self, target_port: int, *, mode: str = "strip") -> None:
        assert mode in ("strip", "refuse")
        self.mode = mode
        self.target = ("127.0.0.1", target_port)
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = int(self._server.getsockname()[1])
        self.from_client = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def client_sent(self) -> bytes:
        with self._lock:
            return bytes(self.from_client)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                self._socks += [client, upstream]
            threading.Thread(target=self._client_to_server, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(upstream, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, upstream: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            for line in reader:
                with self._lock:
                    self.from_client += line
                command = STARTTLS_COMMAND.match(line)
                if command and self.mode == "refuse":
                    client.sendall(command.group(1) + b" BAD STARTTLS not available here\r\n")
                    continue
                upstream.sendall(line)
        except OSError:
            pass
        finally:
            self._shut(client, upstream)

    def _server_to_client(self, upstream: socket.socket, client: socket.socket) -> None:
        reader = upstream.makefile("rb")
        try:
            for line in reader:
                client.sendall(STARTTLS_WORD.sub(b"", line) if self.mode == "strip" else line)
        except OSError:
            pass
        finally:
            self._shut(client, upstream)

    @staticmethod
    def _shut(*socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
        self._server.close()
