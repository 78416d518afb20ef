"""A PostgreSQL server that says it is newer than it is: a TCP proxy in front of a real server that
rewrites the ``server_version`` announced when a session starts, and passes everything else through.

libpq reads that announcement (``PQserverVersion``), and pg_dump refuses a server newer than itself
by it. So the proxy stands in for the day the database was upgraded before the machine running the
backups. Clients must not ask for TLS or GSSAPI encryption (``?sslmode=disable&gssencmode=disable``
in the URL), since the proxy reads the server's messages.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class ServerVersionProxy:
    def __init__(self, upstream_host: str, upstream_port: int, announce: str) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.announce = announce.encode()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]

    def __enter__(self) -> ServerVersionProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._serve, args=(upstream, client), daemon=True).start()

    def _serve(self, upstream: socket.socket, client: socket.socket) -> None:
        """Relay the server's messages one by one until it is ready for queries, then every byte."""
        try:
            while True:
                header = _read_exactly(upstream, 5)
                kind, length = header[:1], int.from_bytes(header[1:], "big")
                body = _read_exactly(upstream, length - 4)
                if kind == b"S" and body.split(b"\0")[0] == b"server_version":
                    body = b"server_version\0" + self.announce + b"\0"
                    header = kind + (len(body) + 4).to_bytes(4, "big")
                client.sendall(header + body)
                if kind in (b"Z", b"E"):  # ReadyForQuery, or the session failed to start
                    break
        except (OSError, EOFError):
            _close(upstream, client)
            return
        _pump(upstream, client)


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _pump(source: socket.socket, destination: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            destination.sendall(data)
    except OSError:
        pass
    _close(source, destination)


def _close(*connections: socket.socket) -> None:
    for connection in connections:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        connection.close()
