"""The V2 client and Big-Little cascades, over real sockets with real server processes."""
import socket
import ssl
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import Process, assert_same_sums, fault_server, random_mlp
from edgebnn import Dense, Model, Policy, RemoteError, RemoteModel, Runtime, save_model
from edgebnn import RemoteTimeout
from edgebnn.net.serve import ModelServer
from edgebnn.net.endpoints import ModelEndpoint


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


def serve(models, *args):
    return Process(["-m", "edgebnn.net.serve", str(models / "big.h5"), "--port", "0", "--name",
                    "big", "--log-level", "WARNING", *args])


@pytest.fixture(scope="module")
def server(models):
    process = serve(models)
    yield process
    assert process.stop() == 0


@pytest.fixture
def faulty():
    started = []

    def start(*args):
        started.append(fault_server(*args))
        return started[-1]
    yield start
    for process in started:
        process.kill()


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def cascade(models, little, url, policy, **remote_options):
    remote = RemoteModel(url, "big", **{"deadline": 2.0, **remote_options})
    return Runtime(models / f"{little}.h5", remote=remote, policy=policy)


# the client ------------------------------------------------------------------------

def test_one_sample_travels_with_its_batch_axis(models, server):
    big = Runtime(models / "big.h5")
    remote = RemoteModel(server.url, "big")
    for x in images(10):
        scores = remote.infer(x)
        assert scores.shape == (10,)
        np.testing.assert_array_equal(scores, big.classify(x).logits)
    assert remote.classes == [str(d) for d in range(10)]
    assert remote.spec()["shape"] == [-1, 28, 28] and remote.ready()


@pytest.mark.parametrize("binary", [True, False])
def test_a_batch_is_one_request_in_binary_or_json(models, server, binary):
    batch = images(7)
    remote = RemoteModel(server.url, "big", binary=binary, version="1")
    scores = remote.infer_batch(batch)
    expected = [r.logits for r in Runtime(models / "big.h5").classify_batch(batch)]
    np.testing.assert_array_equal(scores, expected)
    both = remote.infer_outputs(batch, ["logits", "probabilities"])
    assert both["probabilities"].shape == (7, 10)
    np.testing.assert_allclose(both["probabilities"].sum(axis=1), 1, rtol=1e-6)


def test_binary_tensors_are_used_when_the_server_lists_them(server):
    assert RemoteModel(server.url, "big").spec()["binary"] is True


def test_an_unknown_version_or_output_is_a_remote_error(server):
    with pytest.raises(RemoteError, match="HTTP 404.*no version '7'"):
        RemoteModel(server.url, "big", version="7").infer(images(1)[0])
    with pytest.raises(RemoteError, match="no output 'scores'.*logits, probabilities"):
        RemoteModel(server.url, "big", output="scores").infer(images(1)[0])
    with pytest.raises(RemoteError, match="gives 10 scores for 3 classes"):
        RemoteModel(server.url, "big", classes=["a", "b", "c"]).infer(images(1)[0])


def test_samples_that_do_not_fit_the_remote_input_are_refused_before_sending(server):
    remote = RemoteModel(server.url, "big")
    with pytest.raises(RemoteError, match=r"shape \(27, 28\) do not fit"):
        remote.infer(np.zeros((27, 28), np.uint8))
    with pytest.raises(RemoteError, match="dtype float32 cannot be sent as the remote model's UINT8"):
        remote.infer(np.zeros((28, 28), np.float32))


@pytest.mark.parametrize("mode, seconds, message", [
    ("drip", 0.02, "within the 0.3 s deadline"),
    ("slow", 5, "within the 0.3 s deadline"),
    ("huge", 0, "over the 1048576-byte cap"),
    ("chunked", 0, "over the 1048576-byte cap"),
    ("classes", 0, r"shape \(1, 12\), expected \(1, 10\)"),
    ("name", 0, "the reply has no output 'logits'"),
    ("garbage", 0, "not a v2 inference response"),
    ("error", 0, "HTTP 500: internal failure"),
])
def test_bad_replies_end_within_the_deadline_as_remote_errors(faulty, mode, seconds, message):
    bad = faulty(mode, seconds)
    remote = RemoteModel(bad.url, "big", deadline=0.3, max_reply_bytes=1 << 20)
    remote.spec()                                  # the metadata is fine: only the reply is bad
    started = time.perf_counter()
    with pytest.raises(RemoteError, match=message):
        remote.infer(images(1)[0])
    assert time.perf_counter() - started < 0.3 + 0.2


def test_headers_reach_the_server_as_behind_an_ingress(faulty):
    guarded = faulty("auth")
    with pytest.raises(RemoteError, match="HTTP 401: no token"):
        RemoteModel(guarded.url, "big").infer(images(1)[0])
    remote = RemoteModel(guarded.url, "big", headers={"Authorization": "Bearer t0ken",
                                                      "Host": "big.example.com"})
    assert remote.infer(images(1)[0]).argmax() == 3


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


def test_https_with_a_ca_file(models, tls_files):
    """The embedded server behind TLS (as a TLS-terminating proxy would put it): the
    client checks the certificate against the CA file it is given."""
    cert, key = tls_files
    server = ModelServer(("127.0.0.1", 0), ModelEndpoint(Runtime(models / "big.h5"), "big"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://localhost:{server.server_address[1]}"
    try:
        x = images(1)[0]
        scores = RemoteModel(url, "big", ca_file=str(cert)).infer(x)
        np.testing.assert_array_equal(scores, Runtime(models / "big.h5").classify(x).logits)
        with pytest.raises(RemoteError, match="CERTIFICATE_VERIFY_FAILED"):
            RemoteModel(url, "big").infer(x)           # the system CAs do not know it
    finally:
        server.shutdown()
        server.server_close()


def test_the_deadline_bounds_connecting_too():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)                 # accepts nothing: connects hang once the backlog is full
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        started = time.perf_counter()
        with pytest.raises(RemoteError):
            RemoteModel(f"http://127.0.0.1:{listener.getsockname()[1]}", "big",
                        deadline=0.3).metadata()
        assert time.perf_counter() - started < 0.6
    finally:
        for s in fillers + [listener]:
            s.close()


# cascades --------------------------------------------------------------------------

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


@pytest.mark.parametrize("policy", ["local", "sequential", "parallel", "remote"])
@pytest.mark.parametrize("little", ["claims", "unsure"])
def test_classify_batch_follows_the_policy_like_a_loop(models, server, policy, little):
    batch = images(6, seed=4)
    looped = cascade(models, little, server.url, policy)
    batched = cascade(models, little, server.url, policy)
    expected = [looped.classify(x) for x in batch]
    results = batched.classify_batch(batch)
    assert [(r.exit, r.label, r.name) for r in results] == \
        [(r.exit, r.label, r.name) for r in expected]
    for got, want in zip(results, expected):
        assert_same_sums(got.logits, want.logits)
    asked = sum(r.exit == "remote" for r in results)
    assert batched.counters["remote"] == asked
    if policy == "parallel":        # asked at once; a call the little net made useless may be cancelled
        assert batched.counters["remote_calls"] in ((1,) if asked else (0, 1))
    else:
        assert batched.counters["remote_calls"] == (1 if asked else 0)


def test_classify_batch_falls_back_as_a_whole(models, faulty):
    bad = faulty("error")
    rt = cascade(models, "unsure", bad.url, "sequential")
    results = rt.classify_batch(images(4))
    assert [r.exit for r in results] == ["local-fallback"] * 4
    assert rt.counters["remote_errors"] == 1 and rt.counters["local-fallback"] == 4


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


def test_server_killed_mid_stream_falls_back_to_the_little_net(models):
    server = serve(models)
    rt = cascade(models, "unsure", server.url, "sequential")
    exits = []
    for i, x in enumerate(images(12)):
        if i == 5:
            server.kill()
        exits.append(rt.classify(x).exit)
    assert exits == ["remote"] * 5 + ["local-fallback"] * 7
    assert rt.counters["remote_errors"] == 7 and rt.counters["local-fallback"] == 7


@pytest.mark.parametrize("policy", ["sequential", "parallel", "remote"])
@pytest.mark.parametrize("mode, seconds", [("slow", 5), ("drip", 0.02), ("huge", 0),
                                           ("classes", 0), ("name", 0), ("garbage", 0),
                                           ("error", 0), ("one-class", 0), ("no-classes", 0),
                                           ("int8", 0)])
def test_a_bad_remote_tier_ends_in_a_counted_fallback_within_the_deadline(
        models, faulty, policy, mode, seconds):
    bad = faulty(mode, seconds)
    rt = cascade(models, "unsure", bad.url, policy, deadline=0.3, max_reply_bytes=1 << 20)
    rt.cascade.remote.spec()
    started = time.perf_counter()
    result = rt.classify(images(1)[0])
    assert time.perf_counter() - started < 0.3 + 0.2
    assert result.exit == "local-fallback" and result.name in ("3", "other")
    assert rt.counters["remote_errors"] == 1 and rt.counters["local-fallback"] == 1


@pytest.mark.parametrize("policy", ["sequential", "parallel", "remote"])
@pytest.mark.parametrize("mode", ["one-class", "no-classes", "int8"])
def test_a_batch_from_a_bad_remote_tier_falls_back_too(models, faulty, policy, mode):
    rt = cascade(models, "unsure", faulty(mode).url, policy)
    results = rt.classify_batch(images(3))
    assert [r.exit for r in results] == ["local-fallback"] * 3
    assert rt.counters["remote_errors"] == 1


def test_a_second_reply_to_one_request_is_never_taken_for_the_next(faulty):
    twice = faulty("twice")
    remote = RemoteModel(twice.url, "big", deadline=2.0)
    for x in images(4):
        assert remote.infer(x).argmax() == 3     # each request's own reply, never the extra one
        time.sleep(0.05)                         # the extra reply has arrived by now


def test_a_batch_gets_its_allowance_per_sample_one_sample_keeps_the_deadline(faulty):
    slow = faulty("slow", 0.4)
    remote = RemoteModel(slow.url, "big", deadline=0.25, per_sample=0.1)
    remote.spec()
    assert remote.infer_batch(images(4)).shape == (4, 10)        # 0.25 + 3 * 0.1 s
    with pytest.raises(RemoteTimeout, match="within the 0.25 s deadline"):
        remote.infer(images(1)[0])


def test_the_first_deadline_fallback_is_logged_once(models, faulty, caplog):
    slow = faulty("slow", 1.0)
    rt = cascade(models, "unsure", slow.url, "sequential", deadline=0.2)
    with caplog.at_level("WARNING", logger="edgebnn.tiers.cascade"):
        for x in images(3):
            assert rt.classify(x).exit == "local-fallback"
    warnings = [r for r in caplog.records if r.name == "edgebnn.tiers.cascade"]
    assert len(warnings) == 1 and "missed its deadline" in warnings[0].getMessage()
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
        for i in range(100):
            k = (worker * 100 + i) % len(samples)
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
