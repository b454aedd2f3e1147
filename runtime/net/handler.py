"""The HTTP side of ``edgebnn-serve``: the Open Inference Protocol v2 routes of one model.

Each request is read whole within the server's deadline (a kept-alive wait
included) and its memory budget, routed (health, metadata, ready, infer,
``/metrics``) and answered, every error as ``{"error": ...}`` with a 4xx
status (a 500 only for a bug of ours), then logged with the time it took.
"""
import json
import logging
import re
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from .. import __version__
from . import protocol
from .connections import ServerSocket, request_cost
from .endpoints import VERSION
from ..errors import EdgeError, InputError
from .wire import TIMEOUTS, BadRequest, length, read_body, reader

log = logging.getLogger("edgebnn.net.serve")        # one logger for the server and its requests


class RequestHandler(BaseHTTPRequestHandler):
    """One connection of a ``serve.ModelServer``: its requests read within the server's
    deadline and budget, routed, and answered (JSON errors included) and logged."""
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"    # not 0.9: even a garbled request line gets a status line
    server_version = f"edgebnn/{__version__}"
    disable_nagle_algorithm = True     # headers and body go out as two writes

    def setup(self):
        super().setup()
        self.socket = ServerSocket(self.connection, self.server)
        self.rfile = reader(self.socket)
        self.server.connections.track(self.socket)

    def finish(self):
        self.server.connections.untrack(self.socket)
        super().finish()

    def handle_one_request(self):
        # The whole request, from waiting for it on a kept-alive connection to its
        # last body byte, must arrive within read_timeout: a client that drips it or
        # goes quiet frees its thread then (or its slot earlier, to a newcomer at the cap).
        self.socket.expect_request(self.server.read_timeout)
        self.started, self.route = None, "other"
        super().handle_one_request()        # it hangs up on a timeout while reading
        if self.started is not None:        # a request begun but not answered: say why
            self._reply(408, {"error": f"request not received within "
                                       f"{self.server.read_timeout:g} s"}, close=True)

    def parse_request(self):
        self.started = time.monotonic()
        self.server.metrics.started()
        return super().parse_request()

    def do_GET(self):
        self.socket.settled = True          # read whole: no body
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _answer(self, handler):
        try:
            handler(urllib.parse.urlsplit(self.path).path)
        except (*TIMEOUTS, ConnectionError):          # the client went quiet or away
            self.close_connection = True
        except (protocol.ProtocolError, InputError, BadRequest) as error:
            self._reply(getattr(error, "status", 400), {"error": str(error)},
                        close=getattr(error, "close", False))
        except EdgeError as error:
            self._reply(400, {"error": str(error)})
        except Exception as error:          # a bug of ours: a JSON 500, logged with its trace
            log.exception("error answering %s %s", self.command, self.path)
            self._reply(500, {"error": f"internal error: {type(error).__name__}"}, close=True)

    def _get(self, path):
        server, endpoint = self.server, self.server.endpoint
        if path == "/metrics":
            self.route = "metrics"
            return self._reply(200, server.metrics.render().encode(),
                               content_type="text/plain; version=0.0.4")
        simple = {"/v2/health/live": {"live": True}, "/v2/health/ready": {"ready": True},
                  "/v2": {"name": "edgebnn", "version": __version__,
                          "extensions": [protocol.BINARY_EXTENSION]}}
        if path in simple:
            self.route = "health" if "health" in path else "server"
            return self._reply(200, simple[path])
        suffix = self._model_route(path)
        if suffix == "":
            self.route = "metadata"
            return self._reply(200, endpoint.metadata)
        if suffix == "/ready":
            self.route = "ready"
            return self._reply(200, {"name": endpoint.name, "ready": True})
        self._not_found(path)

    def _post(self, path):
        """An inference request, its cost held against the server's memory budget from
        before its body is read until its outputs are computed (given back before the
        reply goes out, so a client that has its answer finds the budget freed)."""
        binary = protocol.HEADER_LENGTH in self.headers
        taken = self.server.budget.take(request_cost(self.headers, self.server.max_body, binary))
        if taken is None:
            raise BadRequest(f"the server is decoding {self.server.budget.used >> 20} MiB of "
                             "requests, its memory budget; retry", 503, close=True)  # body unread
        try:
            body = read_body(self.rfile, self.headers, self.server.max_body)
            self.socket.settled = True
            if self._model_route(path) != "/infer":
                return self._not_found(path)
            self.route = "infer"
            header_length = self.headers.get(protocol.HEADER_LENGTH)
            request, inputs = protocol.decode(
                body, None if header_length is None else length(header_length), "inputs")
            wanted = protocol.requested_outputs(request, self.server.endpoint.outputs)
            outputs = self.server.infer(inputs)
        finally:
            self.server.budget.give(taken)
        self._reply_outputs(request, outputs, wanted)

    def _reply_outputs(self, request, outputs, wanted):
        endpoint = self.server.endpoint
        reply = {"model_name": endpoint.name, "model_version": VERSION}
        if "id" in request:
            reply["id"] = request["id"]
        data, header_length = protocol.encode(reply, "outputs",
                                              [(name, outputs[name], binary) for name, binary in wanted])
        headers = {protocol.HEADER_LENGTH: str(header_length)} if header_length else {}
        self._reply(200, data, headers=headers,
                    content_type="application/octet-stream" if header_length else "application/json")

    def _model_route(self, path):
        """What follows ``/v2/models/NAME[/versions/1]`` in ``path``; None for another path."""
        match = re.fullmatch(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(/infer|/ready)?", path)
        if not match:
            return None
        name, version, suffix = match.groups()
        if name != self.server.endpoint.name:
            raise BadRequest(f"model {name!r} unknown; this server has "
                              f"{self.server.endpoint.name!r}", 404)
        if version is not None and version != VERSION:
            raise BadRequest(f"model {name!r} has no version {version!r}; it has {VERSION!r}", 404)
        return suffix or ""

    def _not_found(self, path):
        raise BadRequest(f"no such endpoint {self.command} {path}", 404)

    def send_error(self, code, message=None, explain=None):
        """The base class's errors (bad request line, headers) as JSON too."""
        if self.started is None:       # a request line that never came: nothing to answer
            self.started = time.monotonic()
            self.server.metrics.started()
        self._reply(code, {"error": message or self.responses.get(code, ("error",))[0]},
                    close=True)

    def _reply(self, status, body, headers=None, content_type="application/json", close=False):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if close or self.server.draining:
                self.send_header("Connection", "close")
                self.close_connection = True
            self._finished(status, len(data))   # counted before the client can read it all
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
        finally:
            self._finished(status, len(data))

    def _finished(self, status, size):
        if self.started is None:
            return
        seconds = time.monotonic() - self.started
        self.server.metrics.finished(self.route, status, seconds)
        log.info('%s "%s" %d %d %.2fms', self.client_address[0],
                 getattr(self, "requestline", "")[:200], status, size, seconds * 1e3)
        self.started = None

    def log_request(self, code="-", size="-"):   # logged in _finished, with the time taken
        pass

    def log_message(self, format, *args):
        log.debug(format, *args)
