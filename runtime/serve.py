"""Serve a packed model over the Open Inference Protocol v2 (REST/JSON).

    python -m edgebnn.serve MODEL.h5 [--host 127.0.0.1] [--port 8000] [--name NAME]
    python -m edgebnn.serve DDNN.h5 --section devices/0 | edge | cloud | local [...]

The embedded default for a remote tier: standard library HTTP/1.1 with
keep-alive, one thread per connection. It binds loopback unless told
otherwise, caps the request size, answers every bad request with the
protocol's ``{"error": ...}`` and a 4xx status (never a stack trace), and
stops cleanly on SIGTERM or Ctrl-C.
"""
import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from .errors import EdgeError
from .protocol import NAMES, decode_tensor, encode_tensor
from .runtime import Runtime

MAX_BODY_BYTES = 16 << 20


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128    # the default 5 drops connections when many clients start at once

    def __init__(self, address, runtime, name, max_body=MAX_BODY_BYTES):
        super().__init__(address, _Handler)
        self.runtime, self.name, self.max_body = runtime, name, max_body
        model = runtime.model
        self.input_datatype = NAMES[model.input_dtype]
        self.metadata = {
            "name": name, "versions": ["1"], "platform": "edgebnn",
            "inputs": [{"name": "input", "datatype": self.input_datatype,
                        "shape": [-1, *model.sample_shape]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, model.output.size]},
                        {"name": "probabilities", "datatype": "FP64",
                         "shape": [-1, model.output.size]}],
            "parameters": {"classes": model.classes},
        }
        if model.input_kind == "bits":      # packed signs travel as their UINT8 bytes
            self.metadata["parameters"].update(input_dtype="bits",
                                               input_shape=list(model.input_shape))

    def infer(self, request):
        """The v2 response to a decoded request body; ValueError for a bad request."""
        x, single = self.sample(request)
        model = self.runtime.model
        if single:      # the same path, so the same answer, as classify on a device
            results = [self.runtime.classify(x)]
        else:
            results = self.runtime.classify_batch(x) if len(x) else []
        shape = (model.output.size,) if single else (len(x), model.output.size)
        logits = np.array([r.logits for r in results], np.float32).reshape(shape)
        scores = np.array([r.scores for r in results], np.float64).reshape(shape)
        return self.reply(request, (("logits", logits), ("probabilities", scores)))

    def sample(self, request):
        """``(x, single)``: the request's one input tensor, checked against the model."""
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) \
                or len(request["inputs"]) != 1:
            raise ValueError("request must have exactly one tensor in 'inputs'")
        _, x = decode_tensor(request["inputs"][0])
        model = self.runtime.model
        expected = NAMES[model.input_dtype]
        if NAMES[x.dtype] != expected and not (expected == "FP32" and x.dtype.kind == "f"):
            raise ValueError(f"input datatype {NAMES[x.dtype]}, expected {expected}")
        shape = model.sample_shape
        single = x.shape == shape
        if not single and x.shape[1:] != shape:
            raise ValueError(f"input shape {list(x.shape)}, expected {list(shape)} "
                             f"or [n, {', '.join(map(str, shape))}]")
        return x.astype(model.input_dtype), single

    def reply(self, request, named):
        """The v2 response with the ``(name, array)`` outputs the request asked for (all by default)."""
        wanted = {o.get("name") for o in request.get("outputs") or [] if isinstance(o, dict)}
        outputs = [encode_tensor(name, array) for name, array in named
                   if not wanted or name in wanted]
        reply = {"model_name": self.name, "model_version": "1", "outputs": outputs}
        if "id" in request:
            reply["id"] = request["id"]
        return reply


class DeviceServer(ModelServer):
    """A DDNN device (or edge) section: answers each input with its class ``scores`` and
    packed ``features``.

    The coordinator asks for ``scores`` first and for ``features`` only when
    the sample does not exit locally, so each reply carries just what would
    cross the link. The device keeps no state between requests.
    """

    def __init__(self, address, runtime, name, device, max_body=MAX_BODY_BYTES):
        super().__init__(address, runtime, name, max_body)
        self.device = device
        classes = len(runtime.model.classes)
        self.metadata["outputs"] = [
            {"name": "scores", "datatype": "FP32", "shape": [-1, classes]},
            {"name": "features", "datatype": "UINT8", "shape": [-1, device.feature_bytes]}]
        self.metadata["parameters"].update(split=device.split,
                                           feature_shape=list(device.feature_shape))

    def infer(self, request):
        x, single = self.sample(request)
        outputs = [self.device.run(view) for view in ([x] if single else x)]
        scores = np.array([o.scores for o in outputs], np.float32)
        features = np.array([o.features for o in outputs], np.uint8)
        if single:
            scores, features = scores[0], features[0]
        else:
            scores = scores.reshape(len(x), -1)
            features = features.reshape(len(x), self.device.feature_bytes)
        return self.reply(request, (("scores", scores), ("features", features)))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "edgebnn"
    disable_nagle_algorithm = True     # headers and body go out as two writes

    def log_message(self, format, *args):       # quiet: one line per request is too much
        pass

    def do_GET(self):
        server = self.server
        routes = {
            "/v2/health/live": {"live": True},
            "/v2/health/ready": {"ready": True},
            "/v2": {"name": "edgebnn", "version": "1", "extensions": []},
            f"/v2/models/{server.name}": server.metadata,
            f"/v2/models/{server.name}/ready": {"name": server.name, "ready": True},
        }
        if self.path in routes:
            self._reply(200, routes[self.path])
        else:
            self._not_found()

    def do_POST(self):
        body = self._body()
        if body is None:
            return
        if self.path != f"/v2/models/{self.server.name}/infer":
            return self._not_found()
        try:
            request = json.loads(body)
        except ValueError as error:
            return self._reply(400, {"error": f"malformed JSON: {error}"})
        try:
            reply = self.server.infer(request)
        except (ValueError, EdgeError) as error:
            return self._reply(400, {"error": str(error)})
        self._reply(200, reply)

    def _body(self):
        """The request body, or None after answering a bad one."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._reply(411, {"error": "Content-Length required"}, close=True)
            return None
        if int(length) > self.server.max_body:
            self._reply(413, {"error": f"request body over {self.server.max_body} bytes"},
                        close=True)
            return None
        return self.rfile.read(int(length))

    def _not_found(self):
        name = self.path.split("/")[3] if self.path.startswith("/v2/models/") else None
        if name and name != self.server.name:
            message = f"model {name!r} unknown; this server has {self.server.name!r}"
        else:
            message = f"no such endpoint {self.command} {self.path}"
        self._reply(404, {"error": message})

    def _reply(self, status, body, close=False):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m edgebnn.serve", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="packed model file (.h5)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--name", help="model name in URLs (default: the file's stem)")
    parser.add_argument("--backend", choices=["c", "numpy"])
    parser.add_argument("--max-body", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--section", help="serve one section of a DDNN file: devices/I, edge, "
                                          "local or cloud")
    args = parser.parse_args(argv)
    name = args.name or os.path.splitext(os.path.basename(args.model))[0]
    try:
        if args.section:
            server = _section_server(args, name)
            runtime = server.runtime
        else:
            runtime = Runtime(args.model, backend=args.backend)
            server = ModelServer((args.host, args.port), runtime, name, args.max_body)
    except (EdgeError, ImportError) as error:
        parser.exit(2, f"error: {error}\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    host, port = server.server_address[:2]
    print(f"serving {args.model} as {name!r} on http://{host}:{port} "
          f"(backend {runtime.backend})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


def _section_server(args, name):
    """A server for one section of a DDNN file (a device answers scores and features)."""
    from .ddnn import load_ddnn
    from .kernels import get_kernels
    ddnn = load_ddnn(args.model, kernels=get_kernels(args.backend))
    kind, _, index = args.section.partition("/")
    device = None
    if kind == "devices" and index.isdigit() and int(index) < len(ddnn.devices):
        device = ddnn.devices[int(index)]
    elif args.section == "edge":
        device = ddnn.edge
    if device is not None:        # the edge answers like a device: scores and features
        return DeviceServer((args.host, args.port), Runtime(device.model, backend=args.backend),
                            name, device, args.max_body)
    section = {"cloud": ddnn.cloud, "local": ddnn.local}.get(args.section)
    if section is None:
        raise EdgeError(f"section {args.section!r} not in {args.model}: choose devices/0.."
                        f"devices/{len(ddnn.devices) - 1}, cloud" + (", local" if ddnn.local else "")
                        + (", edge" if ddnn.edge else ""))
    return ModelServer((args.host, args.port), Runtime(section, backend=args.backend), name,
                       args.max_body)


if __name__ == "__main__":
    sys.exit(main())
