"""Loopback ports for servers the tests start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TRAP_HOST = "127.0.0.2"  # loopback, but not the test servers' 127.0.0.1: guards allow only 127.0.0.1/32


class Trap:
    """A TCP listener on 127.0.0.2 that counts every connection made to it.

    Tests that check a guard refuses an address point at this listener, never at
    a real internal address: if the guard breaks, the request lands here (and the
    test fails on `connections`), not on 169.254.169.254 or a neighbour's 10.0.0.1.
    """

    def __init__(self) -> None:
        import threading

        self.connections = 0
        self._sock = socket.create_server((TRAP_HOST, 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, path: str = "/x") -> str:
        return f"http://{TRAP_HOST}:{self.port}/{path.lstrip('/')}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._sock.close()
