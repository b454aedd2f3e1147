"""The embedded server's connections: their deadlines, their cap, who makes room, and the
memory their requests may hold together.

A connection waits for its next request (idle), then reads it, then has it
answered. Reading a request, from its wait to its last body byte, is bounded
by the server's read timeout. At the cap, a new connection does not get a 503
while another one is still only waiting or reading: the one that has been at
it longest is closed to make room (a legitimate request is read in
milliseconds, so the one waiting longest is a kept-alive idle client, or one
that drips its request byte by byte to hold a slot). A connection whose
request is being answered is never closed; when all are, the newcomer gets
the 503.

Decoding a request costs memory well beyond its size: a JSON body becomes
Python lists of numbers, about 9x its bytes (a 15 MiB request took 130 MiB).
``ByteBudget`` holds the server-wide sum of what the requests being read and
decoded may cost; a request that would pass it waits for none and gets a 503.
"""
import socket
import threading
import time

from .wire import TIMEOUTS, DeadlineSocket, parse_length, remaining

IDLE_POLL = 0.1    # seconds: how soon a connection waiting for a request notices a shutdown


class ServerSocket(DeadlineSocket):
    """The server's end of a connection. While ``idle`` (no byte of the next request yet) it
    waits in short slices and gives up once the server drains; from the first byte on, the
    request is served in full. Deciding in the connection's own thread leaves no window in
    which a request that has arrived is neither idle nor counted.

    ``waiting_since`` is when it began waiting for its current request; ``settled`` is
    True once that request has been read whole (it is being answered)."""

    def __init__(self, sock, server):
        super().__init__(sock)
        self.server, self.idle = server, False
        self.waiting_since, self.settled, self.evicted = time.monotonic(), False, False

    def expect_request(self, seconds):
        """Wait for the next request, all of it to arrive within ``seconds``."""
        self.waiting_since = time.monotonic()
        self.deadline = self.waiting_since + seconds
        self.idle, self.settled = True, False

    def recv_into(self, buffer, nbytes=0):
        while self.idle:
            if self.server.draining:
                raise socket.timeout("the server is shutting down")
            self.sock.settimeout(min(IDLE_POLL, remaining(self.deadline)))
            try:
                received = self.sock.recv_into(buffer, nbytes)
            except TIMEOUTS:
                continue
            self.idle = False
            return received
        return super().recv_into(buffer, nbytes)

    def evict(self):
        """Close it from another thread: its own thread's next receive sees the end."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass                    # already gone


class Connections:
    """The open connections, at most ``cap`` (plus, for a moment, those being evicted)."""

    def __init__(self, cap):
        self.cap = cap
        self.count = 0
        self._open = set()
        self._lock = threading.Lock()

    def admit(self):
        """Count a new connection: "admitted", or "evicted" when the longest-waiting
        unsettled one was closed to make room at the cap, or "refused" when every open
        connection is being answered."""
        with self._lock:
            victim = None
            if self.count >= self.cap:
                waiting = [s for s in self._open if not s.settled and not s.evicted]
                victim = min(waiting, key=lambda s: s.waiting_since, default=None)
                if victim is None:
                    return "refused"
                victim.evicted = True
            self.count += 1
        if victim is None:
            return "admitted"
        victim.evict()
        return "evicted"

    def release(self):
        """An admitted connection is over."""
        with self._lock:
            self.count -= 1

    def track(self, sock):
        """``sock`` may be evicted from now on (until ``untrack``)."""
        with self._lock:
            self._open.add(sock)

    def untrack(self, sock):
        with self._lock:
            self._open.discard(sock)


JSON_EXPANSION = 10     # bytes of memory per byte of a JSON body while it is decoded
BINARY_EXPANSION = 2    # a binary tensor body: the bytes, then the array made from them


class ByteBudget:
    """Bytes that the requests being read and decoded may hold at once, server-wide."""

    def __init__(self, total):
        self.total, self.used = total, 0
        self._lock = threading.Lock()

    def take(self, cost):
        """Reserve ``cost`` bytes (at most the whole budget, so a lone request always fits);
        the bytes taken, or None when the budget cannot hold them now."""
        cost = min(cost, self.total)
        with self._lock:
            if self.used + cost > self.total:
                return None
            self.used += cost
        return cost

    def give(self, taken):
        with self._lock:
            self.used -= taken


def request_cost(headers, limit, binary):
    """What reading and decoding a request may cost: its declared size (``limit`` when it is
    chunked) times the expansion of its encoding."""
    size = parse_length(headers.get("Content-Length", ""))     # read_body refuses a bad one
    return min(limit if size is None else size, limit) * (BINARY_EXPANSION if binary else JSON_EXPANSION)
