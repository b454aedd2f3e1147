"""Signed model files: signed, unsigned, signed by another key and resealed are told apart."""
import subprocess
import sys

import numpy as np
import pytest

from edgebnn import ModelSignatureError, Runtime, load_ddnn, save_ddnn, save_model
from edgebnn.packed import seal
from conftest import edit_packed, random_mlp

pytest.importorskip("cryptography", reason="signatures need the [sign] extra (cryptography)")


def command(*args):
    done = subprocess.run([sys.executable, "-m", "edgebnn.packed.signing", *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    for name in ("fleet", "other"):
        status, stdout, stderr = command("keygen", folder / f"{name}.key", folder / f"{name}.pub")
        assert status == 0 and stdout.startswith("key "), stderr
    assert (folder / "fleet.key").stat().st_mode & 0o777 == 0o600
    return folder


def signed_model(tmp_path, keys, name="model.h5"):
    path = tmp_path / name
    save_model(random_mlp([6, 4, 3]), path)
    status, stdout, stderr = command("sign", "--key", keys / "fleet.key", path)
    assert status == 0 and "signed by key" in stdout, stderr
    return path


def test_a_signed_file_loads_for_its_key_and_as_any_file_without_keys(tmp_path, keys):
    path = signed_model(tmp_path, keys)
    x = np.ones(6, np.float32)
    trusted = Runtime(path, trusted_keys=[keys / "fleet.pub", keys / "other.pub"])
    np.testing.assert_array_equal(trusted.classify(x).logits, Runtime(path).classify(x).logits)
    assert command("verify", "--key", keys / "fleet.pub", path)[0] == 0


@pytest.mark.parametrize("case, message", [
    ("unsigned", "not signed, and this reader trusts signed models only"),
    ("other key", r"signed by key [0-9a-f]{16}, which is not among the 1 trusted"),
    ("resealed", "changed and sealed again after it was signed"),
])
def test_unsigned_foreign_and_resealed_files_are_refused_before_parsing(tmp_path, keys, case,
                                                                       message):
    path = signed_model(tmp_path, keys)
    if case == "unsigned":
        save_model(random_mlp([6, 4, 3]), path)
    elif case == "other key":
        assert command("sign", "--key", keys / "other.key", path)[0] == 0
    else:            # a weight changed and the file sealed again: the seal holds, the signature not
        data = path.read_bytes()
        edit_packed(path, lambda f: f["layers/0/bias"].__setitem__(0, 7.0))
        resealed = path.read_bytes()
        path.write_bytes(resealed[:seal.SIGNATURE.start] + data[seal.SIGNATURE]
                         + resealed[seal.SIGNATURE.stop:])
    with pytest.raises(ModelSignatureError, match=message):
        Runtime(path, trusted_keys=[keys / "fleet.pub"])
    status, _, stderr = command("verify", "--key", keys / "fleet.pub", path)
    assert status == 1 and "error:" in stderr


def test_a_ddnn_file_is_held_to_the_keys_too(tmp_path, keys):
    from test_ddnn import random_ddnn
    path = tmp_path / "ddnn.h5"
    save_ddnn(random_ddnn(2), path)
    with pytest.raises(ModelSignatureError, match="not signed"):
        load_ddnn(path, trusted_keys=[keys / "fleet.pub"])
    assert command("sign", "--key", keys / "fleet.key", path)[0] == 0
    assert len(load_ddnn(path, trusted_keys=[keys / "fleet.pub"]).devices) == 2


def test_keys_given_with_a_model_object_are_refused_not_ignored(keys):
    with pytest.raises(ValueError, match="a Model object has no file"):
        Runtime(random_mlp([6, 4, 3]), trusted_keys=[keys / "fleet.pub"])


def test_a_damaged_signature_block_is_a_damaged_seal(tmp_path, keys):
    path = signed_model(tmp_path, keys)
    data = bytearray(path.read_bytes())
    data[seal.SIGNATURE.stop + 3] = 1                 # past the signature: must stay zero
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="seal's header is damaged"):
        Runtime(path)


def test_without_cryptography_a_reader_given_keys_refuses_saying_why(tmp_path, keys, monkeypatch):
    path = signed_model(tmp_path, keys)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric", None)
    with pytest.raises(ModelSignatureError, match=r'pip install "edgebnn\[sign\]"'):
        Runtime(path, trusted_keys=[keys / "fleet.pub"])
    assert Runtime(path).classes                        # without keys nothing is checked


def test_the_server_serves_only_a_file_signed_by_its_trusted_key(tmp_path, keys):
    from conftest import Process
    unsigned = tmp_path / "unsigned.h5"
    save_model(random_mlp([6, 4, 3]), unsigned)
    done = subprocess.run([sys.executable, "-m", "edgebnn.net.serve", str(unsigned), "--port", "0",
                           "--trusted-key", str(keys / "fleet.pub")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not signed" in done.stderr
    server = Process(["-m", "edgebnn.net.serve", str(signed_model(tmp_path, keys)), "--port", "0",
                      "--trusted-key", str(keys / "fleet.pub"), "--log-level", "WARNING"])
    assert server.stop() == 0
