"""Serve a packed model over the Open Inference Protocol v2 (REST, JSON or binary tensors).

    edgebnn-serve MODEL.h5 [--host 127.0.0.1] [--port 8000] [--name NAME] [--batch-delay MS]
    edgebnn-serve DDNN.h5 --section devices/0 | edge | cloud | local [...]

The embedded default for a remote tier: standard library only, HTTP/1.1
with keep-alive, one thread per connection (at most ``--max-connections``;
at the cap, the connection waiting longest for its request makes room for a
newcomer: ``connections``).
It speaks the protocol as real clients do (tritonclient, MLServer's and
KServe's): the batch as the first axis, versioned routes, Triton's binary
tensor extension, chunked request bodies. It binds loopback unless told
otherwise, caps the request size and the time to read a request, answers
every bad request with ``{"error": ...}`` and a 4xx status, logs each
request through ``logging`` (logger ``edgebnn.net.serve``), exports
``/metrics`` for Prometheus, and on SIGTERM stops accepting, finishes the
requests that have begun (a connection waiting for its next request is
closed), then exits. With ``--batch-delay`` the samples of
concurrent requests run as one batch (dynamic batching).
"""
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .. import __version__
from . import protocol
from ..commands import NON_NEGATIVE, PORT, POSITIVE, POSITIVE_INT, command_parser, model_path
from .endpoints import VERSION, Batcher, load_endpoint
from ..errors import EdgeError, InputError
from .metrics import Metrics
from .connections import ByteBudget, Connections, ServerSocket, request_cost
from .wire import TIMEOUTS, BadRequest, length, read_body, reader, refuse

MAX_BODY_BYTES = 16 << 20
MEMORY_BUDGET_BYTES = 512 << 20     # for the requests being read and decoded, all together
log = logging.getLogger("edgebnn.net.serve")


class ModelServer(ThreadingHTTPServer):
    """Serves one endpoint (see ``endpoints``); ``batch_delay`` > 0 turns on dynamic batching."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128    # the default 5 drops connections when many clients start at once

    def __init__(self, address, endpoint, max_body=MAX_BODY_BYTES, read_timeout=10.0,
                 max_connections=256, batch_delay=0.0, max_batch=32, batch_workers=1,
                 memory_budget=MEMORY_BUDGET_BYTES):
        super().__init__(address, _Handler)
        self.budget = ByteBudget(memory_budget)
        self.endpoint, self.max_body, self.read_timeout = endpoint, max_body, read_timeout
        self.max_connections = max_connections
        self.metrics = Metrics()
        self.batcher = None
        if batch_delay > 0:
            self.batcher = Batcher(endpoint.compute, max_batch, batch_delay, batch_workers,
                                   self.metrics.batch, lambda: self.metrics.in_flight)
        self.draining = False
        self.connections = Connections(max_connections)

    def infer(self, inputs):
        """One request's outputs, through the batcher when there is one."""
        x = self.endpoint.prepare(inputs)
        if self.batcher is not None:
            return self.endpoint.check(self.batcher.run(x))
        self.metrics.batch(len(x))
        return self.endpoint.check(self.endpoint.compute(x))

    def process_request(self, request, client_address):
        admitted = self.connections.admit()
        if admitted == "refused":       # all busy answering: refused at once, without a thread
            refuse(request, 503, f"over {self.max_connections} connections; try again")
            self.shutdown_request(request)
            return
        if admitted == "evicted":
            self.metrics.evicted()
            log.info("at %d connections: closed the one waiting longest for its request",
                     self.max_connections)
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def handle_error(self, request, client_address):
        log.debug("connection from %s ended by an error", client_address, exc_info=True)

    def stop(self, grace=30.0):
        """Stop accepting; wait (up to ``grace`` seconds) until every connection has finished
        the request it began, idle ones having closed (``connections.ServerSocket``)."""
        self.draining = True
        self.shutdown()
        self.server_close()
        until = time.monotonic() + grace
        while self.connections.count and time.monotonic() < until:
            time.sleep(0.01)


class _Handler(BaseHTTPRequestHandler):
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


def main(argv=None):
    parser = command_parser("edgebnn.net.serve", __doc__.splitlines()[0])
    parser.add_argument("model", type=model_path,
                        help="packed model file (.h5), or the name of a shipped one")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=PORT, default=8000, help="0 picks a free port")
    parser.add_argument("--name", help="model name in URLs (default: the file's stem)")
    parser.add_argument("--backend", choices=["c", "numpy"])
    parser.add_argument("--section", help="serve one section of a DDNN file: devices/I, edge, "
                                          "local or cloud")
    parser.add_argument("--trusted-key", action="append", metavar="PUBLIC.pem",
                        help="serve the file only if signed by this key (edgebnn-sign); repeat "
                             "for several")
    parser.add_argument("--max-body", type=POSITIVE_INT, default=MAX_BODY_BYTES,
                        help="bytes per request")
    parser.add_argument("--memory-budget", type=POSITIVE, default=MEMORY_BUDGET_BYTES >> 20,
                        metavar="MIB", help="memory the requests being decoded may take "
                        "together; a request past it gets 503 (512)")
    parser.add_argument("--read-timeout", type=POSITIVE, default=10.0,
                        help="seconds to receive a whole request, idle keep-alive included")
    parser.add_argument("--max-connections", type=POSITIVE_INT, default=256)
    parser.add_argument("--batch-delay", type=NON_NEGATIVE, default=0.0, metavar="MS",
                        help="dynamic batching: wait up to MS milliseconds for concurrent "
                             "requests to join a batch (0: off)")
    parser.add_argument("--max-batch", type=POSITIVE_INT, default=32,
                        help="samples per dynamic batch")
    parser.add_argument("--batch-workers", type=POSITIVE_INT, default=1,
                        help="threads running batches (each runs one at a time)")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="access log level (WARNING: quiet)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    name = args.name or os.path.splitext(os.path.basename(args.model))[0]
    try:
        endpoint = load_endpoint(args.model, name, args.section, args.backend, args.trusted_key)
        server = ModelServer((args.host, args.port), endpoint, args.max_body, args.read_timeout,
                             args.max_connections, args.batch_delay / 1e3, args.max_batch,
                             args.batch_workers, int(args.memory_budget * 2**20))
    except (EdgeError, ImportError, OSError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    host, port = server.server_address[:2]
    print(f"serving {args.model} as {name!r} on http://{host}:{port} "
          f"(backend {endpoint.runtime.backend}"
          + (f", dynamic batching {args.batch_delay:g} ms / {args.max_batch}" if server.batcher else "")
          + ")", flush=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
