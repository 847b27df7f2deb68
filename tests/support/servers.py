"""Run an ASGI app on a real socket in a background thread (real HTTP in tests)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from infra.local.stack import free_port


@contextmanager
def serve(app) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


class LateRelay:
    """A TCP endpoint that is down until ``open()``, then relays to ``target`` (host:port).

    Stands for a service that is unreachable for a while (DynamoDB during an outage): clients
    get "connection refused" until the relay opens, then talk to the real service through it.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None

    def open(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


#: Kafka's API key of a Produce request (the int16 after a request frame's int32 size).
PRODUCE_API_KEY = 0


class AnswerHoldingKafkaRelay:
    """Relays Kafka traffic to ``target``; from the first Produce request that passes, the broker's
    answers are held back from the clients (until :meth:`reset`).

    The broker has written the message, the producer never hears so: a broker frozen right after the
    write, as its client sees it. The broker must advertise this relay's port on the listener the
    producer bootstraps from, so that every connection of the producer goes through it.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()
        self.produced = threading.Event()
        self._held = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        """Drop every relayed connection (their clients reconnect) and relay answers again."""
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self.produced.clear()
        self._held.clear()

    def close(self) -> None:
        self.reset()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        """Client to broker, frame by frame: a Produce request holds the answers before it goes on."""
        pending = b""
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                pending += data
                while len(pending) >= 6:
                    size = int.from_bytes(pending[:4], "big")
                    if len(pending) < 4 + size:
                        break
                    frame, pending = pending[: 4 + size], pending[4 + size :]
                    if int.from_bytes(frame[4:6], "big") == PRODUCE_API_KEY:
                        self._held.set()
                        self.produced.set()
                    upstream.sendall(frame)

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if not self._held.is_set():
                    client.sendall(data)


class OutageRelay:
    """Relays TCP to ``target`` (host:port), and can make it unreachable for a while.

    During :meth:`outage` every relayed connection is cut and every new one is reset as soon as it
    is accepted (counted in :attr:`refused`, which is how a test knows its client really met the
    outage); afterwards connections are relayed again. Stands for S3 out of reach mid-job.
    """

    def __init__(self, target: str, avoid: set[int] | frozenset[int] = frozenset()) -> None:
        """``avoid``: ports chosen for services that have not bound them yet."""
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()
        while self.port in avoid:
            self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.refused = 0
        self._down = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        """Cut every connection and refuse new ones until :meth:`up`."""
        self._down.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def up(self) -> None:
        self._down.clear()

    def outage(self, seconds: float) -> None:
        """Down for ``seconds``, then relay again."""
        self.down()
        time.sleep(seconds)
        self.up()

    def close(self) -> None:
        self._listener.close()
        self.down()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                self.refused += 1
                # SO_LINGER 0: close answers with a reset, as a dropped connection does.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()
