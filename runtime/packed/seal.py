"""The seal of a packed file: a SHA-256 of its HDF5 bytes, checked before libhdf5 reads any.

A packed file (format version 2) is an HDF5 file with a 512-byte user block:
bytes that libhdf5 leaves to the application and skips when it looks for
its superblock. The seal lives there (docs/FORMAT.md, "The seal"):

    offset  size  field
         0     8  magic b"\\x89edgebnn"
         8     4  format version, little-endian unsigned (2)
        12     4  user block size, little-endian unsigned (512)
        16     8  length of the HDF5 bytes that follow the user block, little-endian
        24    32  SHA-256 of those bytes
        56    80  zeros, or a signature (signing.py): b"ed25519\0", the key
                  id (8 bytes), the Ed25519 signature of bytes 0-55 (64)
       136   376  zeros

A file copied over a flaky link or read from a failing SD card fails the
digest and is refused without libhdf5 parsing a byte of it, which is what
keeps a flipped bit from hanging or crashing libhdf5. The digest is a check
of integrity, not of origin: whoever writes a file can seal it. Origin is
the signature's job (signing.py), checked when the reader is given keys.
"""
import struct

from ..errors import ModelFileError, ModelFormatError, ModelVersionError

MAGIC = b"\x89edgebnn"
VERSION = 2
USER_BLOCK = 512
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
UPGRADE_COMMAND = "python -m edgebnn.converters OLD.h5 NEW.h5"
_HEADER = struct.Struct("<8sIIQ32s")
SIGNATURE_MAGIC = b"ed25519\0"
SIGNATURE = slice(_HEADER.size, _HEADER.size + 80)     # magic, key id, signature


def seal(image):
    """``image`` (HDF5 bytes written with a 512-byte user block) with its seal in that block."""
    import hashlib          # here, not at import: OpenSSL's start costs milliseconds
    body = memoryview(image)[USER_BLOCK:]
    header = _HEADER.pack(MAGIC, VERSION, USER_BLOCK, len(body), hashlib.sha256(body).digest())
    return header + bytes(USER_BLOCK - len(header)) + body


def check(path, data):
    """Raise unless ``data`` (a whole file's bytes) carries an intact seal.

    ``ModelFileError``: not a packed file, truncated, extended or corrupted;
    ``ModelVersionError``: sealed by a newer format version; ``ModelFormatError``:
    an HDF5 file without a seal (a version-1 model, or not a packed model).
    """
    if len(data) < USER_BLOCK:
        if data.startswith(HDF5_SIGNATURE):
            raise ModelFormatError(f"{path}: an HDF5 file without an edgebnn seal (truncated?)")
        raise ModelFileError(f"{path}: not a packed model file ({len(data)} bytes, no seal)")
    magic, version, user_block, length, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        if data.startswith(HDF5_SIGNATURE):
            raise ModelFormatError(
                f"{path}: an HDF5 file without an edgebnn seal: a model of format version 1 "
                f"(rewrite it once with: {UPGRADE_COMMAND}) or not a packed model")
        raise ModelFileError(f"{path}: not a packed model file (no edgebnn seal, not HDF5)")
    if version > VERSION:
        raise ModelVersionError(f"{path}: format version {version} is newer than this reader "
                                f"(knows up to {VERSION}); upgrade edgebnn")
    signature = data[SIGNATURE]
    signed = signature.startswith(SIGNATURE_MAGIC)
    if version != VERSION or user_block != USER_BLOCK or any(data[SIGNATURE.stop:USER_BLOCK]) \
            or (not signed and any(signature)):
        raise ModelFileError(f"{path}: corrupted: its seal's header is damaged")
    import hashlib
    body = memoryview(data)[USER_BLOCK:]
    if length != len(body):
        problem = "truncated" if len(body) < length else "has bytes added at its end"
        raise ModelFileError(f"{path}: {problem}: the seal covers {length} bytes after the user "
                             f"block, the file has {len(body)}")
    if hashlib.sha256(body).digest() != digest:
        raise ModelFileError(f"{path}: corrupted: its bytes do not match the SHA-256 it was "
                             f"written with (damaged in copying or storage?)")
