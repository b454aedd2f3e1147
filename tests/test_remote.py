"""Big-Little cascades and the v2 server, over real sockets with real processes."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edgebnn import Dense, Model, Policy, RemoteError, RemoteModel, Runtime, save_model
from conftest import random_mlp

HERE = os.path.dirname(os.path.abspath(__file__))


class Process:
    """A server subprocess that printed its port; stopped with SIGTERM."""

    def __init__(self, args):
        self.process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"(?:127\.0\.0\.1:|listening on )(\d+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.process.stderr.read()}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
        return self.process.returncode

    def kill(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A "big" 10-class net, and two little one-vs-all nets: one always claims "3", one never."""
    folder = tmp_path_factory.mktemp("models")
    big = random_mlp([784, 32, 10], seed=3, input_shape=(28, 28), input_dtype="uint8", scale=1 / 255)
    save_model(big, folder / "big.h5")
    for name, bias in (("claims", [12.0, 0.0]), ("unsure", [0.0, 12.0])):
        little = Model([Dense(np.zeros((2, 784)), bias)], (28, 28), "uint8", 1 / 255,
                       classes=["3", "other"])
        save_model(little, folder / f"{name}.h5")
    return folder


@pytest.fixture
def serve(models):
    started = []

    def start(*args):
        server = Process(["-m", "edgebnn.serve", str(models / "big.h5"), "--port", "0",
                          "--name", "big", *args])
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(models):
    process = Process(["-m", "edgebnn.serve", str(models / "big.h5"), "--port", "0", "--name", "big"])
    yield process
    assert process.stop() == 0


@pytest.fixture
def faulty():
    started = []

    def start(*args):
        process = Process([os.path.join(HERE, "servers.py"), *args])
        started.append(process)
        return process
    yield start
    for process in started:
        process.kill()


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def cascade(models, little, url, policy, **remote_options):
    remote = RemoteModel(url, "big", **{"read_timeout": 2.0, **remote_options})
    return Runtime(models / f"{little}.h5", remote=remote, policy=policy)


def test_server_answers_like_the_model_run_locally(models, server):
    big = Runtime(models / "big.h5")
    remote = RemoteModel(server.url, "big")
    for x in images(10):
        np.testing.assert_array_equal(remote.infer(x), big.classify(x).logits)
    assert remote.classes == [str(d) for d in range(10)]
    assert remote.ready()


def test_server_answers_a_batch(models, server):
    batch = images(5)
    scores = RemoteModel(server.url, "big").infer(batch)
    expected = [r.logits for r in Runtime(models / "big.h5").classify_batch(batch)]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_local_policy_never_asks_the_remote(models):
    rt = cascade(models, "unsure", "http://127.0.0.1:9", "local")
    assert all(rt.classify(x).exit == "local" for x in images(5))
    assert rt.counters["remote_calls"] == 0 and rt.counters["local"] == 5


@pytest.mark.parametrize("policy", ["sequential", "parallel"])
def test_confident_little_net_answers_locally(models, server, policy):
    rt = cascade(models, "claims", server.url, policy)
    results = [rt.classify(x) for x in images(5)]
    assert [r.exit for r in results] == ["local"] * 5
    assert all(r.name == "3" and r.timings["local"] > 0 and r.timings["remote"] is None
               for r in results)
    expected_calls = 5 if policy == "parallel" else 0
    assert rt.counters["local"] == 5
    assert rt.counters["remote_calls"] <= expected_calls


@pytest.mark.parametrize("policy", ["sequential", "parallel", "remote"])
def test_unclaimed_samples_get_the_big_nets_answer(models, server, policy):
    rt = cascade(models, "unsure", server.url, policy)
    big = Runtime(models / "big.h5")
    for x in images(8):
        result = rt.classify(x)
        assert result.exit == "remote"
        expected = big.classify(x)
        assert (result.label, result.name) == (expected.label, expected.name)
        np.testing.assert_array_equal(result.logits, expected.logits)
        assert result.timings["remote"] > 0 and result.timings["total"] >= result.timings["remote"]
    assert rt.counters["remote"] == 8 and rt.counters["remote_errors"] == 0


def test_remote_policy_asks_even_when_the_little_net_is_sure(models, server):
    rt = cascade(models, "claims", server.url, "remote")
    assert {rt.classify(x).exit for x in images(3)} == {"remote"}


def test_priority_and_confidence_rule_is_configurable(models, server):
    rt = cascade(models, "claims", server.url, Policy("sequential", min_confidence=1.0))
    assert rt.classify(images(1)[0]).exit == "remote"       # 0.99999 < 1.0: not claimed
    with pytest.raises(ValueError, match=r"priority classes \['7'\] are not classes"):
        cascade(models, "claims", server.url, Policy("sequential", priority=["7"]))
    with pytest.raises(ValueError, match="policy 'eager' unknown"):
        Policy("eager")


def test_server_killed_mid_stream_falls_back_to_the_little_net(models, serve):
    server = serve()
    rt = cascade(models, "unsure", server.url, "sequential")
    exits = []
    for i, x in enumerate(images(12)):
        if i == 5:
            server.kill()
        exits.append(rt.classify(x).exit)
    assert exits == ["remote"] * 5 + ["local-fallback"] * 7
    assert rt.counters["remote_errors"] == 7 and rt.counters["local-fallback"] == 7


@pytest.mark.parametrize("policy", ["sequential", "parallel", "remote"])
def test_slow_server_past_the_timeout_falls_back_within_the_budget(models, faulty, policy):
    slow = faulty("slow", "5")
    rt = cascade(models, "unsure", slow.url, policy, read_timeout=0.2)
    started = time.perf_counter()
    result = rt.classify(images(1)[0])
    assert time.perf_counter() - started < 1.5
    assert result.exit == "local-fallback" and result.name in ("3", "other")
    assert rt.counters["remote_errors"] == 1


@pytest.mark.parametrize("mode", ["garbage", "error"])
def test_garbage_or_500_falls_back_and_counts_the_error(models, faulty, mode):
    bad = faulty(mode)
    rt = cascade(models, "unsure", bad.url, "sequential")
    assert [rt.classify(x).exit for x in images(3)] == ["local-fallback"] * 3
    assert rt.counters["remote_errors"] == 3


def test_refused_connection_falls_back(models, faulty):
    closed = faulty("garbage")
    closed.kill()                                   # the port is now closed
    rt = cascade(models, "unsure", closed.url, "remote")
    assert rt.classify(images(1)[0]).exit == "local-fallback"


def test_strict_policy_raises_the_remote_error(models, faulty):
    bad = faulty("error")
    rt = cascade(models, "unsure", bad.url, Policy("sequential", strict=True))
    with pytest.raises(RemoteError, match="HTTP 500: internal failure"):
        rt.classify(images(1)[0])


def test_concurrent_clients_get_the_local_answers(models, server):
    samples = images(40, seed=9)
    big = Runtime(models / "big.h5")
    expected = [big.classify(x).logits for x in samples]
    remote = RemoteModel(server.url, "big")
    errors, mismatches = [], []

    def client(worker):
        for i in range(200):
            k = (worker * 200 + i) % len(samples)
            try:
                if not np.array_equal(remote.infer(samples[k]), expected[k]):
                    mismatches.append(k)
            except RemoteError as error:
                errors.append(error)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and mismatches == []


def raw(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request(method, path, body, headers or {})
    response = connection.getresponse()
    status, data = response.status, response.read()
    connection.close()
    return status, json.loads(data)


def infer_body(**tensor):
    base = {"name": "input", "shape": [28, 28], "datatype": "UINT8", "data": [0] * 784}
    return json.dumps({"inputs": [{**base, **tensor}]})


@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", "/v2/models/big/infer", "{not json", 400, "malformed JSON"),
    ("POST", "/v2/models/big/infer", json.dumps({"inputs": []}), 400, "exactly one tensor"),
    ("POST", "/v2/models/big/infer", json.dumps([1, 2]), 400, "exactly one tensor"),
    ("POST", "/v2/models/big/infer", infer_body(shape=[28, 27], data=[0] * 756), 400,
     r"input shape \[28, 27\], expected \[28, 28\]"),
    ("POST", "/v2/models/big/infer", infer_body(shape=[28, 28], data=[0] * 10), 400,
     "10 values for shape"),
    ("POST", "/v2/models/big/infer", infer_body(datatype="FP32"), 400,
     "input datatype FP32, expected UINT8"),
    ("POST", "/v2/models/big/infer", infer_body(datatype="STRING"), 400, "datatype 'STRING' unsupported"),
    ("POST", "/v2/models/big/infer", infer_body(data=["a"] * 784), 400, "numbers only"),
    ("POST", "/v2/models/big/infer", infer_body(data=[300] * 784), 400, "outside the UINT8 range"),
    ("POST", "/v2/models/small/infer", infer_body(), 404, "model 'small' unknown"),
    ("GET", "/v2/models/small", None, 404, "model 'small' unknown"),
    ("GET", "/v3/anything", None, 404, "no such endpoint"),
])
def test_malformed_requests_get_a_json_4xx_and_the_server_keeps_serving(
        server, method, path, body, status, message):
    got, reply = raw(server, method, path, body)
    assert got == status and re.search(message, reply["error"])
    assert raw(server, "GET", "/v2/health/ready")[0] == 200
    assert raw(server, "POST", "/v2/models/big/infer", infer_body())[0] == 200


def test_oversized_request_is_refused(models, serve):
    server = serve("--max-body", "1000")
    status, reply = raw(server, "POST", "/v2/models/big/infer", infer_body())
    assert status == 413 and "over 1000 bytes" in reply["error"]
    assert raw(server, "GET", "/v2/health/live")[0] == 200


def test_metadata_follows_the_protocol(server):
    status, meta = raw(server, "GET", "/v2/models/big")
    assert status == 200 and meta["name"] == "big"
    assert meta["inputs"] == [{"name": "input", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert meta["outputs"][0]["name"] == "logits"
    assert raw(server, "GET", "/v2/models/big/ready") == (200, {"name": "big", "ready": True})
    assert raw(server, "GET", "/v2/health/live") == (200, {"live": True})


def test_server_stops_cleanly_on_sigterm(serve):
    server = serve()
    assert RemoteModel(server.url, "big").ready()
    assert server.stop() == 0


def test_server_refuses_a_broken_model_file(tmp_path):
    path = tmp_path / "broken.h5"
    path.write_text("no model here")
    done = subprocess.run([sys.executable, "-m", "edgebnn.serve", str(path), "--port", "0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "not a packed model file" in done.stderr
