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
concurrent requests run as one batch (dynamic batching). This module holds
the server and the command; ``handler`` answers each connection's requests.
"""
import logging
import os
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from ..commands import NON_NEGATIVE, PORT, POSITIVE, POSITIVE_INT, command_parser, model_path
from .connections import ByteBudget, Connections
from .endpoints import Batcher, load_endpoint
from ..errors import EdgeError
from .handler import RequestHandler
from .metrics import Metrics
from .wire import refuse

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
        super().__init__(address, RequestHandler)
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
