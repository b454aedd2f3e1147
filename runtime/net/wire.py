"""HTTP/1.1 plumbing bounded in time and size, shared by the V2 client and server.

A socket timeout bounds each call: a peer that drips a reply (or a request)
one byte at a time never trips it. Here each send and receive gets only
what is left until one ``deadline`` for the whole exchange (a
``time.monotonic()`` value); past it, calls raise one of ``TIMEOUTS``. Bodies
are read against a byte limit, by Content-Length or chunk by chunk, and
every malformed length or chunk is a ``BadRequest`` that says what to answer.
"""
import http
import http.client
import io
import json
import re
import select
import socket
import time

# what a call past its deadline raises: socket.timeout is TimeoutError only from Python 3.10
TIMEOUTS = (TimeoutError, socket.timeout)


def remaining(deadline):
    """Seconds left until ``deadline``; TimeoutError when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def sleep(seconds, deadline):
    """Sleep ``seconds``, or raise TimeoutError at once if that would pass ``deadline``."""
    if seconds:
        if time.monotonic() + seconds > deadline:
            raise TimeoutError("deadline passed")
        time.sleep(seconds)


class DeadlineSocket:
    """``sock`` with ``deadline`` (set per exchange by its owner) applied to each call."""

    def __init__(self, sock):
        self.sock = sock
        self.deadline = time.monotonic()

    def sendall(self, data):
        self.sock.settimeout(remaining(self.deadline))
        self.sock.sendall(data)

    def recv_into(self, buffer, nbytes=0):
        self.sock.settimeout(remaining(self.deadline))
        return self.sock.recv_into(buffer, nbytes)

    def makefile(self, mode="rb", buffering=None):
        """A buffered binary reader over the deadline-bounded receives (``http.client`` asks)."""
        return reader(self)

    def close(self):
        self.sock.close()

    def __getattr__(self, name):
        return getattr(self.sock, name)


def reader(sock):
    """A buffered binary reader whose every receive goes through ``sock.recv_into``."""
    return io.BufferedReader(_Raw(sock))


class _Raw(io.RawIOBase):
    def __init__(self, sock):
        self.sock = sock

    def readable(self):
        return True

    def readinto(self, buffer):
        return self.sock.recv_into(buffer)


class Connection(http.client.HTTPConnection):
    """A client's HTTP/1.1 (or HTTPS) connection whose every socket call is bounded by
    ``deadline``, which its owner sets before each request."""

    def __init__(self, host, port, ssl_context=None):
        super().__init__(host, port or (443 if ssl_context else 80))
        self.ssl_context = ssl_context
        self.deadline = None
        self.requests = 0

    def bound(self, deadline):
        self.deadline = deadline
        if self.sock is not None:
            self.sock.deadline = deadline

    def stale(self):
        """True when the server sent something while no request was out: a second reply
        to the last request, or the end of the connection. A next reply read from it could
        be that one, not ours."""
        if self.sock is None:
            return False
        pending = getattr(self.sock.sock, "pending", None)        # bytes TLS has decrypted
        return bool((pending and pending()) or select.select([self.sock], [], [], 0)[0])

    def connect(self):
        self.timeout = remaining(self.deadline)
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            self.sock.settimeout(remaining(self.deadline))
            self.sock = self.ssl_context.wrap_socket(self.sock, server_hostname=self.host)
        self.sock = DeadlineSocket(self.sock)
        self.sock.deadline = self.deadline


class BadRequest(ValueError):
    """A request the server answers with ``status`` (and hangs up on when ``close``)."""

    def __init__(self, message, status=400, close=False):
        super().__init__(message)
        self.status, self.close = status, close


def length(text):
    """A Content-Length (or similar) header's value; BadRequest unless plain digits."""
    size = parse_length(text)
    if size is None:
        raise BadRequest(f"header value {text!r} is not a length in bytes", 400, close=True)
    return size


def parse_length(text):
    """``length`` for callers that only estimate: None instead of an error."""
    return int(text) if re.fullmatch(r"[0-9]{1,12}", text.strip()) else None


def read_body(rfile, headers, limit):
    """A request body of at most ``limit`` bytes: by Content-Length, or chunked.

    A request that frames its body two ways (two Content-Lengths, or one with
    chunked) is refused: a proxy in front may have read it the other way,
    which is how requests are smuggled past it."""
    lengths = headers.get_all("Content-Length") or []
    if len(lengths) > 1:
        raise BadRequest("more than one Content-Length header", 400, close=True)
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        if lengths:
            raise BadRequest("both Content-Length and Transfer-Encoding: chunked", 400, close=True)
        return _read_chunked(rfile, limit)
    declared = headers.get("Content-Length")
    if declared is None:
        raise BadRequest("a body needs Content-Length or Transfer-Encoding: chunked", 411, close=True)
    size = length(declared)
    if size > limit:
        raise BadRequest(f"request body over {limit} bytes", 413, close=True)
    body = rfile.read(size)
    if len(body) != size:
        raise BadRequest("request body shorter than its Content-Length", 400, close=True)
    return body


def _read_chunked(rfile, limit):
    parts, total = [], 0
    while True:
        line = rfile.readline(1026)
        match = re.fullmatch(rb"([0-9A-Fa-f]{1,8})(;[^\r\n]*)?\r\n", line)
        if not match:
            raise BadRequest("malformed chunked body", 400, close=True)
        size = int(match.group(1), 16)
        total += size
        if total > limit:
            raise BadRequest(f"request body over {limit} bytes", 413, close=True)
        if size == 0:
            while rfile.readline(1026) not in (b"\r\n", b"\n", b""):
                pass            # trailers, ignored
            return b"".join(parts)
        chunk = rfile.read(size + 2)
        if len(chunk) != size + 2 or chunk[-2:] != b"\r\n":
            raise BadRequest("malformed chunked body", 400, close=True)
        parts.append(chunk[:-2])


def refuse(sock, status, message):
    """Answer ``status`` with a JSON error straight on ``sock`` (no handler, no thread)."""
    body = json.dumps({"error": message}).encode()
    try:
        sock.settimeout(1.0)
        sock.sendall(f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    except OSError:
        pass
