"""The embedded V2 server as real clients meet it: tritonclient, raw HTTP, floods and signals."""
import http.client
import json
import os
import re
import socket
import threading
import time

import numpy as np
import pytest

from conftest import Process, assert_same_sums, run_threads
from edgebnn import BatchNorm, BinaryDense, Model, RemoteError, RemoteModel, Runtime, Sign, save_model
from edgebnn.bitpack import pack_signs


def binary_mlp(seed=0):
    """A small binarized net (exact integer arithmetic: any batch gives the same bits)."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1, 1], (64, 784))
    top = rng.choice([-1, 1], (10, 64))
    return Model([Sign(), BinaryDense(pack_signs(signs), np.zeros(64, np.int32),
                                      np.zeros(64, np.uint8)),
                  BinaryDense(pack_signs(top)),
                  BatchNorm(np.full(10, 0.1, np.float32), np.zeros(10, np.float32))],
                 (28, 28), "uint8", 1 / 255, -0.5)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from conftest import random_mlp
    folder = tmp_path_factory.mktemp("serve")
    save_model(random_mlp([784, 32, 10], seed=3, input_shape=(28, 28), input_dtype="uint8",
                          scale=1 / 255), folder / "big.h5")
    return folder


def serve(path, *args, name="big"):
    return Process(["-m", "edgebnn.net.serve", str(path), "--port", "0", "--name", name,
                    "--log-level", "WARNING", *args])


@pytest.fixture(scope="module")
def server(models):
    process = serve(models / "big.h5", "--read-timeout", "2")
    yield process
    assert process.stop() == 0


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def raw(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request(method, path, body, headers or {})
    response = connection.getresponse()
    status, data = response.status, response.read()
    connection.close()
    return status, json.loads(data) if data[:1] in (b"{", b"[") else data


def infer_body(**tensor):
    base = {"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": [0] * 784}
    return json.dumps({"inputs": [{**base, **tensor}]})


# the official Triton client ------------------------------------------------------

@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_with_its_defaults_and_with_json(models, server, binary):
    tritonclient = pytest.importorskip("tritonclient.http", reason="the [triton] extra")
    client = tritonclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("big")
    metadata = client.get_model_metadata("big")
    assert metadata["inputs"][0]["shape"] == [-1, 28, 28]
    batch = images(5)
    tensor = tritonclient.InferInput("input", list(batch.shape), "UINT8")
    if binary:
        tensor.set_data_from_numpy(batch)                   # the default: binary tensors
        result = client.infer("big", [tensor])
    else:
        tensor.set_data_from_numpy(batch, binary_data=False)
        result = client.infer("big", [tensor], model_version="1", outputs=[
            tritonclient.InferRequestedOutput("logits", binary_data=False)])
    expected = [r.logits for r in Runtime(models / "big.h5").classify_batch(batch)]
    np.testing.assert_array_equal(result.as_numpy("logits"), expected)
    if binary:
        np.testing.assert_allclose(result.as_numpy("probabilities").sum(axis=1), 1, rtol=1e-6)
    client.close()


def test_remote_model_sends_the_request_tritonclient_writes(server):
    """The client's binary request, byte for byte the tensor and field for field the JSON
    header that tritonclient's own request builder writes for the same batch."""
    tritonclient = pytest.importorskip("tritonclient.http", reason="the [triton] extra")
    remote, sent = RemoteModel(server.url, "big", deadline=5.0), []
    request = remote._request

    def recorded(method, path, body=None, headers=None, seconds=None):
        if method == "POST":
            sent.append((path, body, headers))
        return request(method, path, body, headers, seconds)
    remote._request = recorded
    batch = images(3)
    remote.infer_outputs(batch, ["logits"])
    tensor = tritonclient.InferInput("input", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)
    theirs, their_length = tritonclient.InferenceServerClient.generate_request_body(
        [tensor], outputs=[tritonclient.InferRequestedOutput("logits")])
    (path, body, headers), = sent
    length = int(headers["Inference-Header-Content-Length"])
    assert path == "/v2/models/big/infer"
    assert json.loads(body[:length]) == json.loads(theirs[:their_length])
    assert body[length:] == theirs[their_length:]


# routes ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v2/models/big/versions/1/ready", "/v2/models/big/ready?x=1",
                                  "/v2/health/live?probe=1", "/v2/models/big/versions/1",
                                  "/v2?verbose"])
def test_versioned_routes_and_query_strings(server, path):
    status, reply = raw(server.port, "GET", path)
    assert status == 200, reply


def test_versioned_infer_and_a_chunked_body(server):
    status, reply = raw(server.port, "POST", "/v2/models/big/versions/1/infer?trace=0", infer_body())
    assert status == 200 and reply["outputs"][0]["shape"] == [1, 10]
    body = infer_body().encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                       for part in (body[:100], body[100:2000], body[2000:])) + b"0\r\n\r\n"
    status, reply = raw(server.port, "POST", "/v2/models/big/infer", chunked,
                        {"Transfer-Encoding": "chunked"})
    assert status == 200 and reply["model_version"] == "1"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("POST", "/v2/models/big/infer", iter([body[:500], body[500:]]),
                       encode_chunked=True)    # the standard library's own chunked client
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["outputs"][0]["shape"] == [1, 10]
    connection.close()


def test_metadata_has_the_batch_axis(server):
    status, meta = raw(server.port, "GET", "/v2/models/big")
    assert status == 200 and meta["name"] == "big" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert [o["shape"] for o in meta["outputs"]] == [[-1, 10], [-1, 10]]
    assert raw(server.port, "GET", "/v2")[1]["extensions"] == ["binary_tensor_data"]


# malformed requests ------------------------------------------------------------------

def raw_bytes(port, data, timeout=5):
    """Send ``data`` as is; the status and JSON body of the reply (None: no reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while True:
            try:
                part = sock.recv(65536)
            except socket.timeout:          # TimeoutError from Python 3.10 on
                break
            if not part:
                break
            reply += part
            head, _, body = reply.partition(b"\r\n\r\n")
            length = re.search(rb"Content-Length: (\d+)", head)
            if length and len(body) >= int(length.group(1)):
                break
    if not reply:
        return None, None
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


BINARY_HEADER = json.dumps({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8",
                                        "parameters": {"binary_data_size": 784}}]})


def post(body, headers=b""):
    if isinstance(body, str):
        body = body.encode()
    return (b"POST /v2/models/big/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
            % (len(body), headers)) + body


@pytest.mark.parametrize("request_bytes, status, message", [
    (post("{not json"), 400, "malformed JSON"),
    (post("[" * 100000 + "]" * 100000), 400, "nested too deeply"),
    (post(json.dumps({"inputs": []})), 400, "exactly one input"),
    (post(json.dumps([1, 2])), 400, "JSON object with a list 'inputs'"),
    (post(infer_body(shape=[28, 28])), 400, r"input shape \[28, 28\], expected \[n, 28, 28\]"),
    (post(infer_body(shape=[0, 28, 28], data=[])), 400, "with n >= 1"),
    (post(infer_body(shape=[1, 28, 28], data=[0] * 10)), 400, "10 values for 784"),
    (post(infer_body(name="pixels")), 400, "exactly one input, named 'input'"),
    (post(infer_body(datatype="FP32")), 400, "input datatype FP32, expected UINT8"),
    (post(infer_body(datatype="STRING")), 400, "datatype 'STRING' unsupported"),
    (post(infer_body(data=["a"] * 784)), 400, "numbers only"),
    (post(infer_body(data=[300] * 784)), 400, "outside the UINT8 range"),
    (post(infer_body(data=[1.5] * 784)), 400, "UINT8 values must be whole numbers"),
    (post(infer_body(data=[True] * 784)), 400, "numbers only"),
    (post(infer_body(data=[[0] * 28] * 27 + [[0] * 27])), 400, "numbers only"),
    (post(json.dumps({"inputs": json.loads(infer_body())["inputs"], "outputs": 5})), 400,
     "'outputs' must be a list"),
    (post(json.dumps({"inputs": json.loads(infer_body())["inputs"], "outputs": [{"name": 7}]})),
     400, "string 'name'"),
    (post(json.dumps({"inputs": json.loads(infer_body())["inputs"], "outputs": [{"name": "x"}]})),
     400, "unknown output 'x'"),
    (post(json.dumps({"inputs": json.loads(infer_body())["inputs"],
                      "parameters": {"binary_data_output": "yes"}})), 400, "true or false"),
    (post(infer_body(), b"Inference-Header-Content-Length: 99999\r\n"), 400, "does not fit"),
    (post(BINARY_HEADER + "x" * 10, b"Inference-Header-Content-Length: %d\r\n" % len(BINARY_HEADER)),
     400, "binary_data_size 784 for shape .* takes 784 bytes; the body has 10 binary bytes left"),
    (b"POST /v2/models/big/infer HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400,
     "not a length"),
    (b"POST /v2/models/big/infer HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "not a length"),
    (b"POST /v2/models/big/infer HTTP/1.1\r\nHost: x\r\n\r\n", 411, "Content-Length"),
    (post(infer_body(), b"Content-Length: 3\r\n"), 400, "more than one Content-Length"),
    (post(infer_body(), b"Transfer-Encoding: chunked\r\n"), 400,
     "both Content-Length and Transfer-Encoding"),
    (b"POST /v2/models/big/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
     "malformed chunked"),
    (b"GARBAGE\r\n\r\n", 400, "Bad request"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, "URI Too Long"),
    (b"DELETE /v2 HTTP/1.1\r\n\r\n", 501, "Unsupported method"),
    (post(infer_body()).replace(b"/v2/models/big/", b"/v2/models/small/"), 404,
     "model 'small' unknown"),
    (post(infer_body()).replace(b"/v2/models/big/", b"/v2/models/big/versions/2/"), 404,
     "no version '2'"),
    (b"GET /v3/anything HTTP/1.1\r\n\r\n", 404, "no such endpoint"),
])
def test_every_malformed_request_gets_a_json_4xx(server, request_bytes, status, message):
    got, reply = raw_bytes(server.port, request_bytes)
    assert got == status, reply
    assert re.search(message, reply["error"]), reply
    assert raw(server.port, "POST", "/v2/models/big/infer", infer_body())[0] == 200


def test_nothing_reaches_stderr_but_the_start_line(models):
    process = serve(models / "big.h5")
    for data in (b"GARBAGE\r\n\r\n", post("[" * 100000), b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n"):
        raw_bytes(process.port, data)
    process.stop()
    assert "Traceback" not in process.process.stderr.read()


def test_oversized_request_is_refused(models):
    process = serve(models / "big.h5", "--max-body", "1000")
    try:
        status, reply = raw(process.port, "POST", "/v2/models/big/infer", infer_body())
        assert status == 413 and "over 1000 bytes" in reply["error"]
        assert raw(process.port, "GET", "/v2/health/live")[0] == 200
    finally:
        process.stop()


def eventually(condition, seconds=10.0):
    """Whether ``condition()`` holds within ``seconds`` (polled: a busy machine is slow)."""
    until = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.05)
    return True


def threads_of(process):
    with open(f"/proc/{process.process.pid}/status") as f:
        return int(re.search(r"Threads:\s+(\d+)", f.read()).group(1))


def test_short_bodies_free_their_threads_after_the_read_timeout(models):
    process = serve(models / "big.h5", "--read-timeout", "0.5")
    sockets = []
    try:
        for _ in range(100):        # each promises 1000 bytes and sends 10
            sock = socket.create_connection(("127.0.0.1", process.port))
            sock.sendall(b"POST /v2/models/big/infer HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"
                         + b"x" * 10)
            sockets.append(sock)
        assert eventually(lambda: threads_of(process) > 50)        # one thread each
        assert eventually(lambda: threads_of(process) < 10)        # all freed after 0.5 s
        sockets[0].settimeout(1)
        assert b" 408 " in sockets[0].recv(1000)
        assert raw(process.port, "POST", "/v2/models/big/infer", infer_body())[0] == 200
    finally:
        for sock in sockets:
            sock.close()
        process.stop()


def test_at_the_cap_the_connection_waiting_longest_makes_room(models):
    process = serve(models / "big.h5", "--max-connections", "4", "--read-timeout", "5")
    idle = []
    try:
        for _ in range(4):                  # kept open, no request: oldest first
            idle.append(socket.create_connection(("127.0.0.1", process.port)))
            time.sleep(0.05)
        status, _ = raw_bytes(process.port, b"GET /v2/health/live HTTP/1.1\r\n\r\n", timeout=2)
        assert status == 200
        idle[0].settimeout(2)
        assert idle[0].recv(100) == b""     # the oldest was closed for it
        idle[1].settimeout(0.2)
        with pytest.raises(socket.timeout):     # the others are still open (3.9: not TimeoutError)
            idle[1].recv(100)
        metrics = raw(process.port, "GET", "/metrics")[1]
        assert b"edgebnn_connections_evicted_total 1" in metrics   # the newcomer closed: room
    finally:
        for sock in idle:
            sock.close()
        process.stop()


def test_a_crowd_dripping_requests_cannot_keep_a_client_out(models):
    """Slowloris within the limits: twice the cap in connections, each sending a byte of its
    request every 0.2 s (and reconnecting when closed); a client still gets every answer."""
    process = serve(models / "big.h5", "--max-connections", "8", "--read-timeout", "5")
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", process.port), timeout=1) as sock:
                    for byte in b"POST /v2/models/big/infer HTTP/1.1\r\nContent-Length: 9":
                        if stop.wait(0.2):
                            return
                        sock.sendall(bytes([byte]))
            except OSError:
                pass                        # closed to make room: come back
    crowd = [threading.Thread(target=drip) for _ in range(16)]
    for thread in crowd:
        thread.start()
    try:
        time.sleep(1.0)                     # the crowd holds every slot
        answers = [raw(process.port, "POST", "/v2/models/big/infer", infer_body())[0]
                   for _ in range(20)]
        assert answers == [200] * 20
    finally:
        stop.set()
        for thread in crowd:
            thread.join()
        process.stop()


def test_requests_past_the_memory_budget_get_503_until_it_frees(models):
    """Decoding JSON takes about 10x its bytes: with a budget of 12 MiB, one 1 MiB JSON
    request being read holds 10 MiB of it, and a second one is refused, not queued."""
    process = serve(models / "big.h5", "--memory-budget", "12")
    body = infer_body().encode()
    padded = body[:-1] + b" " * ((1 << 20) - len(body)) + body[-1:]      # 1 MiB, still valid
    slow = socket.create_connection(("127.0.0.1", process.port), timeout=10)
    try:
        slow.sendall(b"POST /v2/models/big/infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                     % len(padded) + padded[:1000])
        time.sleep(0.3)
        status, reply = raw_bytes(process.port, b"POST /v2/models/big/infer HTTP/1.1\r\n"
                                  b"Content-Length: %d\r\n\r\n" % len(padded) + padded)
        assert status == 503 and "memory budget" in reply["error"]
        slow.sendall(padded[1000:])
        assert slow.recv(65536).startswith(b"HTTP/1.1 200")
        assert raw(process.port, "POST", "/v2/models/big/infer", padded.decode())[0] == 200
    finally:
        slow.close()
        process.stop()


class FakeSocket:
    """What ``Connections`` reads of a connection, and whether it was evicted."""

    def __init__(self, waiting_since, settled):
        self.waiting_since, self.settled, self.evicted, self.closed = waiting_since, settled, False, 0

    def evict(self):
        self.closed += 1


def test_at_the_cap_a_connection_being_answered_is_never_closed_for_a_newcomer():
    from edgebnn.net.connections import Connections
    connections = Connections(3)
    answering, old, young = FakeSocket(0.0, True), FakeSocket(1.0, False), FakeSocket(2.0, False)
    for sock in (answering, old, young):
        assert connections.admit() == "admitted"
        connections.track(sock)
    assert connections.admit() == "evicted" and (old.closed, young.closed) == (1, 0)
    assert connections.admit() == "evicted" and young.closed == 1     # not the same one twice
    assert connections.admit() == "refused" and answering.closed == 0
    assert connections.count == 5                   # until the closed ones' threads end
    for sock in (old, young):
        connections.untrack(sock)
        connections.release()
    assert connections.count == 3


def test_sigterm_finishes_the_request_in_flight_then_exits(models):
    process = serve(models / "big.h5")
    body = infer_body().encode()
    sock = socket.create_connection(("127.0.0.1", process.port), timeout=10)
    sock.sendall(b"POST /v2/models/big/infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body)
                 + body[:100])
    # connections are accepted in the order they came: once a later one is answered, the
    # server holds this one (a connection still in the kernel's queue is not in flight)
    assert raw(process.port, "GET", "/v2/health/live")[0] == 200
    process.process.send_signal(15)
    time.sleep(0.5)
    with pytest.raises(ConnectionRefusedError):             # no longer accepting
        socket.create_connection(("127.0.0.1", process.port), timeout=1)
    sock.sendall(body[100:])
    reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200") and b"Connection: close" in reply
    assert process.process.wait(timeout=10) == 0
    sock.close()


def test_sigterm_closes_idle_connections_at_once(models):
    """A kept-alive connection waiting for its next request does not hold the shutdown until
    its read timeout: it is closed, and the server exits."""
    process = serve(models / "big.h5", "--read-timeout", "60")
    connection = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
    connection.request("GET", "/v2/health/live")
    response = connection.getresponse()
    assert response.status == 200 and not response.will_close
    response.read()
    process.process.send_signal(15)
    assert process.process.wait(timeout=5) == 0          # not after the 60 s read timeout
    assert connection.sock.recv(1) == b""                  # closed by the server
    connection.close()


def test_metrics_in_prometheus_text_format(models):
    process = serve(models / "big.h5")
    try:
        for _ in range(3):
            raw(process.port, "POST", "/v2/models/big/infer", infer_body())
        raw(process.port, "POST", "/v2/models/big/infer", "{bad")
        status, text = raw(process.port, "GET", "/metrics")
        text = text.decode()
        assert status == 200
        assert 'edgebnn_requests_total{route="infer",status="200"} 3' in text
        assert 'edgebnn_requests_total{route="infer",status="400"} 1' in text
        assert re.search(r'edgebnn_request_seconds_bucket\{le="\+Inf"\} [4-9]', text)
        assert 'edgebnn_batch_rows_bucket{le="1"} 3' in text
        assert "# TYPE edgebnn_request_seconds histogram" in text
    finally:
        process.stop()


def test_metrics_parse_as_prometheus_reads_them(server):
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client reads them")
    raw(server.port, "POST", "/v2/models/big/infer", infer_body())
    text = raw(server.port, "GET", "/metrics")[1].decode()
    families = {family.name: family for family in parser.text_string_to_metric_families(text)}
    assert families["edgebnn_request_seconds"].type == "histogram"
    assert any(sample.labels == {"route": "infer", "status": "200"} and sample.value >= 1
               for sample in families["edgebnn_requests"].samples)


@pytest.mark.parametrize("option, value", [
    ("--port", "99999"), ("--port", "-1"), ("--max-body", "0"), ("--read-timeout", "-1"),
    ("--read-timeout", "nan"), ("--max-connections", "0"), ("--batch-delay", "-1"),
    ("--max-batch", "0"), ("--batch-workers", "0"), ("--log-level", "LOUD")])
def test_bad_options_are_refused_before_serving(option, value, capsys):
    from edgebnn.net import serve as command
    with pytest.raises(SystemExit) as exit:
        command.main(["mnist-mlp.h5", option, value])
    assert exit.value.code == 2 and f"argument {option}" in capsys.readouterr().err


def test_a_shipped_model_is_served_by_its_name():
    process = Process(["-m", "edgebnn.net.serve", "mnist-mlp.h5", "--port", "0", "--log-level",
                       "WARNING"])
    try:
        assert raw(process.port, "GET", "/v2/models/mnist-mlp/ready")[0] == 200
    finally:
        assert process.stop() == 0


def test_access_log_through_logging(models):
    process = Process(["-m", "edgebnn.net.serve", str(models / "big.h5"), "--port", "0"])
    raw(process.port, "POST", "/v2/models/big/infer?x=1", infer_body())
    process.stop()
    log = process.process.stderr.read()
    assert re.search(r'edgebnn\.net\.serve 127\.0\.0\.1 "POST /v2/models/big/infer\?x=1 HTTP/1\.1" 200 '
                     r'\d+ [\d.]+ms', log), log


# dynamic batching ---------------------------------------------------------------------

def test_one_clients_bad_sample_fails_only_its_own_request_in_a_batch(tmp_path):
    """A float-input net whose first layer is a sign finds a NaN inside the kernel, after
    requests were merged: only the request that sent it may fail."""
    path = tmp_path / "signs.h5"
    net = binary_mlp()
    save_model(Model(net.layers, (28, 28), "float32", classes=net.classes), path)
    alone, batched = serve(path), serve(path, "--batch-delay", "20", "--max-batch", "16")
    samples = np.random.default_rng(2).standard_normal((24, 28, 28)).astype(np.float32)
    bad = set(range(0, len(samples), 4))
    for i in bad:
        samples[i, 3, 3] = np.nan
    try:
        expected = RemoteModel(alone.url, "big").infer_batch(np.delete(samples, sorted(bad), 0))
        remote = RemoteModel(batched.url, "big", deadline=10.0)
        answers = [None] * len(samples)

        def client(i):
            try:
                answers[i] = remote.infer(samples[i])
            except RemoteError as error:
                answers[i] = error

        run_threads(client, len(samples))
        good = [a for i, a in enumerate(answers) if i not in bad]
        assert not [a for a in good if isinstance(a, RemoteError)]
        np.testing.assert_array_equal(good, expected)
        for i in bad:
            assert isinstance(answers[i], RemoteError) and "HTTP 400" in str(answers[i])
        text = raw(batched.port, "GET", "/metrics")[1].decode()
        ones = int(re.search(r'edgebnn_batch_rows_bucket\{le="1(\.0)?"\} (\d+)', text).group(2))
        assert ones < int(re.search(r"edgebnn_batch_rows_count (\d+)", text).group(1))  # merged
    finally:
        alone.stop()
        batched.stop()


@pytest.mark.parametrize("kind", ["binary", "float"])
def test_dynamic_batching_merges_requests_and_answers_as_alone(models, tmp_path, kind):
    path = tmp_path / "model.h5"
    if kind == "binary":
        save_model(binary_mlp(), path)
    else:
        path = models / "big.h5"
    alone = serve(path)
    batched = serve(path, "--batch-delay", "20", "--max-batch", "16")
    samples = images(48, seed=5)
    try:
        expected = RemoteModel(alone.url, "big").infer_batch(samples)
        single = [RemoteModel(alone.url, "big").infer(x) for x in samples]
        remote = RemoteModel(batched.url, "big")
        answers = [None] * len(samples)

        def client(i):
            answers[i] = remote.infer(samples[i])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(samples))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if kind == "binary":       # integer arithmetic: the very same bits whatever the batch
            np.testing.assert_array_equal(answers, single)
        else:                      # BLAS sums a batch in another order than one sample
            assert_same_sums(answers, single)
        assert [a.argmax() for a in answers] == [s.argmax() for s in single]
        assert_same_sums(expected, single)
        text = raw(batched.port, "GET", "/metrics")[1].decode()
        count = int(re.search(r"edgebnn_batch_rows_count (\d+)", text).group(1))
        assert count < len(samples)                  # requests were merged
    finally:
        alone.stop()
        batched.stop()


def test_serving_a_ddnn_section_with_batches(tmp_path):
    from test_ddnn import random_ddnn, views
    from edgebnn import save_ddnn
    path = tmp_path / "ddnn.h5"
    save_ddnn(random_ddnn(3, "concat", "concat", threshold=0.5), path)
    device = serve(path, "--section", "devices/1", "--batch-delay", "5", name="device1")
    try:
        from edgebnn import load_ddnn
        ddnn = load_ddnn(path)
        batch = np.stack([views(3, seed)[1] for seed in range(4)])
        outputs = RemoteModel(device.url, "device1", dtype=None).infer_outputs(batch)
        for i, view in enumerate(batch):
            expected = ddnn.devices[1].run(view)
            np.testing.assert_array_equal(outputs["scores"][i], expected.scores)
            np.testing.assert_array_equal(outputs["features"][i], expected.features)
    finally:
        device.stop()


def test_server_refuses_a_broken_model_file(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "broken.h5"
    path.write_text("no model here")
    done = subprocess.run([sys.executable, "-m", "edgebnn.net.serve", str(path), "--port", "0"],
                          capture_output=True, text=True, timeout=30, env={**os.environ})
    assert done.returncode == 2 and "not a packed model file" in done.stderr
