"""Signed models for fleets: who wrote a file, checked before libhdf5 reads it.

The seal's SHA-256 proves a file intact, not where it came from: anyone can
change a file and seal it again. A signature adds the origin. ``sign`` puts
an Ed25519 signature of the seal (its first 56 bytes, which hold the
SHA-256 of everything after the user block) into the user block, with the
id of the key (the first 8 bytes of the SHA-256 of its public bytes), so
the file stays one file. A reader given trusted public keys
(``Runtime(path, trusted_keys=[...])``, ``load_ddnn``) refuses a file that
is unsigned, signed by another key, or changed and sealed again after
signing, with ``ModelSignatureError``, before libhdf5 parses a byte.

    edgebnn-sign keygen fleet.key fleet.pub        # keep fleet.key off the devices
    edgebnn-sign sign --key fleet.key model.h5
    edgebnn-sign verify --key fleet.pub model.h5

Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public). The
cryptography package does the Ed25519 arithmetic (``pip install
"edgebnn[sign]"``); a reader given keys without it refuses, saying so.
"""
import hashlib
import os
import sys

from ..commands import command_parser
from ..errors import EdgeError, ModelSignatureError
from . import seal

INSTALL = 'pip install "edgebnn[sign]" (the cryptography package)'


def _ed25519():
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise ModelSignatureError(f"checking or making signatures needs {INSTALL}") from None
    return ed25519, serialization


def key_id(public_key):
    """The 8 bytes that name ``public_key`` in a signed file."""
    _, serialization = _ed25519()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8]


def load_key(path, private=False):
    """The Ed25519 key in the PEM file ``path``; ModelSignatureError naming it otherwise."""
    ed25519, serialization = _ed25519()
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 16)
        key = serialization.load_pem_private_key(text, None) if private else \
            serialization.load_pem_public_key(text)
    except (OSError, ValueError, TypeError) as error:
        raise ModelSignatureError(f"{path}: not a readable {'private' if private else 'public'} "
                                  f"key ({error})") from None
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise ModelSignatureError(f"{path}: not an Ed25519 key")
    return key


def trusted(keys):
    """``{key id: public key}`` of ``keys``: paths of PEM files or public key objects."""
    found = {}
    for key in keys:
        key = load_key(key) if isinstance(key, (str, os.PathLike)) else key
        found[key_id(key)] = key
    return found


def sign(data, private_key):
    """``data`` (a sealed file's bytes) with ``private_key``'s signature of its seal."""
    seal.check("model", data)
    public = private_key.public_key()
    block = seal.SIGNATURE_MAGIC + key_id(public) + private_key.sign(data[:seal.SIGNATURE.start])
    return data[:seal.SIGNATURE.start] + block + data[seal.SIGNATURE.stop:]


def verify(path, data, keys):
    """Raise ModelSignatureError unless ``data`` (sealed, its seal checked) is signed by one
    of ``keys`` (``trusted``'s mapping) and unchanged since."""
    block = data[seal.SIGNATURE]
    if not block.startswith(seal.SIGNATURE_MAGIC):
        raise ModelSignatureError(f"{path}: not signed, and this reader trusts signed models only")
    identity, signature = block[8:16], block[16:]
    key = keys.get(identity)
    if key is None:
        raise ModelSignatureError(f"{path}: signed by key {identity.hex()}, which is not among "
                                  f"the {len(keys)} trusted")
    from cryptography.exceptions import InvalidSignature
    try:
        key.verify(signature, data[:seal.SIGNATURE.start])
    except InvalidSignature:
        raise ModelSignatureError(f"{path}: its signature does not match its seal: changed and "
                                  "sealed again after it was signed") from None


def main(argv=None):
    parser = command_parser("edgebnn.packed.signing", "Sign packed models and check signatures.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    keygen = commands.add_parser("keygen", help="write a new key pair (PEM)")
    keygen.add_argument("private")
    keygen.add_argument("public")
    for name, what in (("sign", "private"), ("verify", "public")):
        command = commands.add_parser(name, help=f"{name} a packed model with a {what} key")
        command.add_argument("--key", required=True, help=f"the {what} key (PEM)")
        command.add_argument("model")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (EdgeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1 if args.command == "verify" and isinstance(error, ModelSignatureError) else 2


def _run(args):
    ed25519, serialization = _ed25519()
    if args.command == "keygen":
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        descriptor = os.open(args.private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as f:
            f.write(private)
        with open(args.public, "wb") as f:
            f.write(public)
        print(f"key {key_id(key.public_key()).hex()}: private {args.private}, public {args.public}")
        return 0
    with open(args.model, "rb") as f:
        data = f.read()
    seal.check(args.model, data)
    if args.command == "sign":
        key = load_key(args.key, private=True)
        with open(args.model, "wb") as f:
            f.write(sign(data, key))
        print(f"{args.model}: signed by key {key_id(key.public_key()).hex()}")
        return 0
    keys = trusted([args.key])
    verify(args.model, data, keys)
    print(f"{args.model}: signed by key {next(iter(keys)).hex()}, intact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
