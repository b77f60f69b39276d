"""Real loopback sockets that stand for a service we do not own going wrong: a port
where nothing listens (connections refused) and a server that accepts connections and
never answers."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


def refusing_port() -> int:
    """A loopback port that refuses connections: bound to get a free one, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """The port of a loopback server that accepts every connection and never answers;
    the connections are held open until the block ends."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)  # so that the accepting thread sees the stop in time
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()
