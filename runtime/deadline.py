"""Sockets whose every call is bounded by one deadline for the whole exchange.

A socket timeout bounds each call: a peer that drips a reply (or a request)
one byte at a time never trips it. Here each send and receive gets only
what is left until ``deadline`` (a ``time.monotonic()`` value), so the whole
exchange ends in time; past it, calls raise ``TimeoutError``. The HTTP
client and the embedded server both read through ``reader``.
"""
import io
import time


def remaining(deadline):
    """Seconds left until ``deadline``; TimeoutError when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


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
