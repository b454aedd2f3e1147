"""A client for a model served over the Open Inference Protocol v2 (standard library only).

Works against any server that speaks the protocol's REST/JSON form: this
package's own ``python -m edgebnn.serve``, KServe, Triton or MLServer. Each
thread keeps one persistent HTTP/1.1 connection; the connect and read
timeouts bound how long a call can take; every failure (refused, timed out,
a 4xx/5xx answer, a reply that is not the expected tensor) is a
``RemoteError``, an ``OSError``.
"""
import http.client
import json
import socket
import threading
import time
import urllib.parse

import numpy as np

from .errors import RemoteError
from .protocol import decode_tensor, encode_tensor, infer_path, model_path


class _Connection(http.client.HTTPConnection):
    """HTTP/1.1 connection with separate connect and read timeouts."""

    def __init__(self, host, port, connect_timeout, read_timeout):
        super().__init__(host, port, timeout=connect_timeout)
        self.read_timeout = read_timeout

    def connect(self):
        super().connect()
        self.sock.settimeout(self.read_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class RemoteModel:
    """One model on a v2 inference server.

    >>> big = RemoteModel("http://127.0.0.1:8000", "big", read_timeout=0.2)
    >>> big.infer(frame)              # float32 scores of one sample

    ``output`` names the tensor to read (default: the first one returned);
    ``infer`` gives it as ``dtype`` (None: the datatype of the reply, e.g. the
    UINT8 packed feature map of a DDNN device).
    ``link_delay`` (seconds) sleeps before sending and after receiving, to
    stand in for a slow network link in experiments.
    """

    def __init__(self, url, model, connect_timeout=1.0, read_timeout=5.0, input_name="input",
                 output=None, classes=None, link_delay=0.0, dtype=np.float32):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"url {url!r} must look like http://host:port")
        self.url, self.model = url, model
        self.host, self.port = parts.hostname, parts.port or 80
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.input_name, self.output = input_name, output
        self.link_delay = link_delay
        self.dtype = dtype
        self._classes = classes
        self._local = threading.local()

    def infer(self, x):
        """Scores of one sample (or a batch: first axis) as ``dtype`` (float32 by default)."""
        outputs = self.infer_outputs(x, [self.output] if self.output else None)
        return outputs[self.output] if self.output else next(iter(outputs.values()))

    def infer_outputs(self, x, names=None):
        """``{name: array}``: the tensors ``names`` (default: all the server
        returns) of one request, each as ``dtype``."""
        body = {"inputs": [encode_tensor(self.input_name, x)]}
        if names:
            body["outputs"] = [{"name": name} for name in names]
        reply = self._request("POST", infer_path(self.model), body)
        try:
            outputs = {t.get("name"): decode_tensor(t)[1] for t in reply["outputs"]}
            missing = [name for name in names or () if name not in outputs]
            if missing or not outputs:
                raise KeyError(f"no tensor {missing[0] if missing else 'at all'}")
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise RemoteError(f"{self.url}: reply is not a v2 inference response ({error})") from None
        return {name: array if self.dtype is None else array.astype(self.dtype)
                for name, array in outputs.items()}

    def ready(self):
        """True when the server says the model is ready; False when it cannot be reached."""
        try:
            self._request("GET", model_path(self.model) + "/ready")
            return True
        except RemoteError:
            return False

    def metadata(self):
        return self._request("GET", model_path(self.model))

    @property
    def classes(self):
        """Class names from the server's model metadata (``parameters.classes``), if it gives them."""
        if self._classes is None:
            try:
                self._classes = list(self.metadata().get("parameters", {}).get("classes") or [])
            except (RemoteError, AttributeError):
                return []
        return self._classes

    def close(self):
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _request(self, method, path, body=None):
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if self.link_delay:
            time.sleep(self.link_delay)
        for attempt in (1, 2):         # a kept-alive connection may have been closed
            connection = self._connection()
            try:
                connection.request(method, path, payload, headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self.close()
                if attempt == 2:
                    raise RemoteError(f"{self.url}{path}: connection lost ({error})") from None
            except (OSError, http.client.HTTPException) as error:
                self.close()
                raise RemoteError(f"{self.url}{path}: {type(error).__name__}: {error}") from None
        if self.link_delay:
            time.sleep(self.link_delay)
        if response.will_close:
            self.close()
        try:
            reply = json.loads(data) if data else {}
        except ValueError:
            raise RemoteError(f"{self.url}{path}: HTTP {response.status}, reply is not JSON") from None
        if response.status != 200:
            message = reply.get("error") if isinstance(reply, dict) else None
            raise RemoteError(f"{self.url}{path}: HTTP {response.status}: {message or reply}")
        return reply

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = _Connection(self.host, self.port, self.connect_timeout, self.read_timeout)
            self._local.connection = connection
        return connection
