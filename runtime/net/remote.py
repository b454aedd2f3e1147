"""A client for a model served over the Open Inference Protocol v2 (standard library only).

Talks to any server that speaks the protocol's REST form, as they speak it:
this package's ``edgebnn-serve``, MLServer, Triton or KServe. The first axis
of every tensor is the batch (one sample travels as ``[1, *shape]``); the
input and output tensors are chosen by name from the model's metadata, read
once; Triton's binary tensor extension is used when the server lists it,
JSON otherwise. Each request has one deadline covering connect, send and
every read, and a cap on the reply's size; every failure (refused, late, a
4xx/5xx answer, a reply that is not the tensor expected) is a
``RemoteError``, an ``OSError``. Each thread keeps one persistent HTTP/1.1
connection (HTTPS with ``ssl`` when the URL says so).
"""
import http.client
import json
import threading
import time
import urllib.parse

import numpy as np

from . import protocol
from .wire import TIMEOUTS, Connection, length, sleep
from ..errors import RemoteError, RemoteTimeout

MAX_REPLY_BYTES = 16 << 20


class RemoteModel:
    """One model on a v2 inference server.

    >>> big = RemoteModel("http://127.0.0.1:8000", "big", deadline=0.2)
    >>> big.infer(frame)               # float32 scores of one sample
    >>> big.infer_batch(frames)        # (n, classes)

    ``deadline`` (seconds) bounds each request from connect to the last byte
    read; a request of n samples gets ``(n - 1) * per_sample`` seconds more
    (default 0), so a batch can have the time its size needs while one
    sample keeps a tight deadline. ``version`` addresses ``/v2/models/NAME/versions/V``. ``output``
    names the tensor ``infer`` reads (default: the first output in the
    model's metadata) and ``classes`` its class names (default: the
    metadata's ``parameters.classes``); a reply with another class count is
    refused. ``binary`` forces the binary tensor extension on or off (None:
    when the server's metadata lists it). ``headers`` go with every request
    (e.g. ``{"Authorization": "Bearer ...", "Host": "big.example.com"}`` for
    a KServe ingress); ``ca_file`` or ``ssl_context`` set up HTTPS.
    ``infer`` gives the output as ``dtype`` (None: as the server sent it).
    ``link_delay`` (seconds) is slept before sending and after receiving, to
    stand in for a slow network link in experiments; it counts against the
    deadline.
    """

    def __init__(self, url, model, deadline=1.0, version=None, output=None, classes=None,
                 binary=None, headers=None, ca_file=None, ssl_context=None,
                 max_reply_bytes=MAX_REPLY_BYTES, link_delay=0.0, dtype=np.float32,
                 per_sample=0.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {url!r} must look like http://host:port or https://host:port")
        if not deadline > 0:
            raise ValueError(f"deadline must be positive, not {deadline!r}")
        if not per_sample >= 0:
            raise ValueError(f"per_sample must be zero or positive, not {per_sample!r}")
        self.per_sample = float(per_sample)
        self.url, self.model, self.version = url.rstrip("/"), model, version
        self.deadline, self.link_delay = float(deadline), float(link_delay)
        self.output, self.binary, self.dtype = output, binary, dtype
        self.headers = dict(headers or {})
        self.max_reply_bytes = max_reply_bytes
        self._address = (parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/"))
        self._ssl = ssl_context
        if parts.scheme == "https" and ssl_context is None:
            import ssl
            self._ssl = ssl.create_default_context(cafile=ca_file)
        self._classes = classes
        self._spec = None
        self._local = threading.local()
        self._lock = threading.Lock()

    # inference ------------------------------------------------------------------

    def infer(self, x):
        """The output row of one sample, as ``dtype``."""
        return self.infer_batch(np.asarray(x)[None])[0]

    def infer_batch(self, x):
        """The output rows ``(n, ...)`` of the samples ``x`` (first axis), in one request."""
        spec = self.spec()
        return self.infer_outputs(x, [spec["output"]])[spec["output"]]

    def infer_outputs(self, x, names=None):
        """``{name: array}`` of the outputs ``names`` (default: all the model lists) for
        the samples ``x`` (first axis), in one request; each with the batch axis."""
        spec = self.spec()
        names = list(names or spec["outputs"])
        x = self._sample_batch(x, spec)
        binary = spec["binary"]
        body, header_length = protocol.encode(
            {"outputs": [{"name": name, "parameters": {"binary_data": binary}} for name in names]},
            "inputs", [(spec["input"], x, binary)])
        headers = {"Content-Type": "application/octet-stream" if header_length else "application/json"}
        if header_length:
            headers[protocol.HEADER_LENGTH] = str(header_length)
        path = protocol.model_path(self.model, self.version) + "/infer"
        reply_headers, data = self._request("POST", path, body, headers, self.deadline_for(len(x)))
        try:
            declared = reply_headers.get(protocol.HEADER_LENGTH)
            _, outputs = protocol.decode(data, None if declared is None else length(declared),
                                         "outputs")
        except ValueError as error:
            raise RemoteError(f"{self.url}{path}: the reply is not a v2 inference response "
                              f"({error})") from None
        return {name: self._checked(outputs.get(name), name, len(x), spec) for name in names}

    def _sample_batch(self, x, spec):
        x = np.asarray(x)
        shape = spec["shape"]
        if x.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape[1:], x.shape[1:])):
            raise RemoteError(f"{self.url}: samples of shape {x.shape[1:]} do not fit the remote "
                              f"model's input {shape[1:]} (first axis: the batch)")
        dtype = spec["dtype"]
        if x.dtype != dtype:
            if not np.can_cast(x.dtype, dtype, "safe"):
                raise RemoteError(f"{self.url}: samples of dtype {x.dtype} cannot be sent as the "
                                  f"remote model's {protocol.NAMES[dtype]} without loss")
            x = x.astype(dtype)
        return x

    def _checked(self, array, name, n, spec):
        """An output of the reply, with its batch axis and, for the class output, its class count."""
        if array is None:
            raise RemoteError(f"{self.url}: the reply has no output {name!r}")
        width = spec["widths"].get(name)
        if array.ndim < 1 or array.shape[0] != n or (width is not None and array.shape[1:] != (width,)):
            expected = f"({n}, {width})" if width is not None else f"({n}, ...)"
            raise RemoteError(f"{self.url}: output {name!r} of shape {array.shape}, expected "
                              f"{expected}")
        declared = spec["dtypes"].get(name)
        if declared is not None and array.dtype != declared:
            raise RemoteError(f"{self.url}: output {name!r} arrived as "
                              f"{protocol.NAMES.get(array.dtype, array.dtype)}, its metadata "
                              f"declares {protocol.NAMES[declared]}")
        if self.dtype is not None and array.dtype != self.dtype:
            array = array.astype(self.dtype)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise RemoteError(f"{self.url}: output {name!r} is not finite")
        return array

    def deadline_for(self, samples):
        """Seconds a request of ``samples`` samples may take, from connect to its last byte."""
        return self.deadline + max(samples - 1, 0) * self.per_sample

    # metadata -------------------------------------------------------------------

    def spec(self):
        """What requests need from the model's metadata (read once, then kept)."""
        if self._spec is None:
            with self._lock:
                if self._spec is None:
                    self._spec = self._read_spec()
        return self._spec

    def _read_spec(self):
        metadata = self.metadata()
        if self._classes is None:
            self._classes = protocol.metadata_classes(metadata)
        try:
            spec = protocol.model_spec(metadata, self.output, self._classes)
        except ValueError as error:
            raise RemoteError(f"{self.url}: {error}") from None
        binary = self.binary
        if binary is None:
            binary = protocol.BINARY_EXTENSION in self._server_extensions()
        return dict(spec, binary=binary)

    def metadata(self):
        """The model's metadata (``GET /v2/models/NAME[/versions/V]``)."""
        _, data = self._request("GET", protocol.model_path(self.model, self.version))
        return self._json(data, "model metadata")

    def _server_extensions(self):
        try:
            _, data = self._request("GET", "/v2")
            extensions = self._json(data, "server metadata").get("extensions") or []
            return extensions if isinstance(extensions, list) else []
        except RemoteError:
            return []           # a server without server metadata gets JSON

    def ready(self):
        """True when the server says the model is ready; False when it cannot be reached."""
        try:
            self._request("GET", protocol.model_path(self.model, self.version) + "/ready")
            return True
        except RemoteError:
            return False

    @property
    def classes(self):
        """Class names: given, or the metadata's ``parameters.classes`` ([] when it has none)."""
        if self._classes is None:
            self._classes = protocol.metadata_classes(self.metadata())
        return self._classes

    def _json(self, data, what):
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise RemoteError(f"{self.url}: {what} is not a JSON object")
        return value

    # transport ------------------------------------------------------------------

    def _request(self, method, path, body=None, headers=None, seconds=None):
        """``(headers, body)`` of a 200 reply within ``seconds`` (default: the deadline);
        else RemoteError (RemoteTimeout when the time ran out)."""
        seconds = self.deadline if seconds is None else seconds
        deadline = time.monotonic() + seconds
        headers = {**self.headers, **(headers or {})}
        target = self._address[3] + path
        try:
            sleep(self.link_delay, deadline)
            for attempt in (1, 2):     # a kept-alive connection may have been closed meanwhile
                connection = self._connection(deadline)
                reused = connection.requests > 0
                try:
                    connection.request(method, target, body, headers)
                    response = connection.getresponse()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    self.close()
                    if not reused or attempt == 2:
                        raise
            data = self._body(response)
            connection.requests += 1
            if response.will_close:
                self.close()
            sleep(self.link_delay, deadline)
        except RemoteError:
            self.close()
            raise
        except TIMEOUTS:
            self.close()
            raise RemoteTimeout(f"{self.url}{path}: no complete answer within the "
                                f"{seconds:g} s deadline") from None
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise RemoteError(f"{self.url}{path}: {type(error).__name__}: {error}") from None
        if response.status != 200:
            try:
                message = json.loads(data).get("error")
            except (ValueError, AttributeError, RecursionError):
                message = data[:200]
            raise RemoteError(f"{self.url}{path}: HTTP {response.status}: {message}")
        return response.headers, data

    def _body(self, response):
        """The reply's body, refused when over ``max_reply_bytes`` (before reading it when
        its length is declared)."""
        declared = response.getheader("Content-Length")
        try:
            size = None if declared is None else length(declared)
        except ValueError:
            raise RemoteError(f"{self.url}: a reply with Content-Length {declared!r}") from None
        if size is not None and size > self.max_reply_bytes:
            raise RemoteError(f"{self.url}: a reply of {declared} bytes, over the "
                              f"{self.max_reply_bytes}-byte cap")
        data = response.read(self.max_reply_bytes + 1)
        if len(data) > self.max_reply_bytes:
            raise RemoteError(f"{self.url}: a reply over the {self.max_reply_bytes}-byte cap")
        return data

    def _connection(self, deadline):
        connection = getattr(self._local, "connection", None)
        if connection is not None and connection.stale():
            self.close()            # never read one request's reply as another's
            connection = None
        if connection is None:
            scheme, host, port, _ = self._address
            connection = Connection(host, port, self._ssl if scheme == "https" else None)
            self._local.connection = connection
        connection.bound(deadline)
        return connection

    def close(self):
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
