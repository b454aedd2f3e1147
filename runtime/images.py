"""A small reader for the image files a sensor leaves behind: PGM and PNG.

Standard library only, and as strict as the model reader: sizes are
checked before anything is allocated, every chunk's CRC is checked, and the
decompressed size is bounded by what the header declares. Grey images come
back as ``(H, W)`` uint8 arrays, colour ones as ``(H, W, C)``; samples of
more than 8 bits (16-bit PNG, PGM with a maximum other than 255) are
scaled to 0..255 and rounded, as image libraries convert them.
"""
import struct
import zlib

import numpy as np

from .errors import InputError

MAX_PIXELS = 1 << 24
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}      # colour type -> samples per pixel


def read_image(path):
    """The pixels of a PNG or PGM file; InputError naming the file when it is not one."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)
    try:
        if data.startswith(PNG_SIGNATURE):
            return _png(data)
        if data[:2] in (b"P5", b"P2"):
            return _pgm(data)
        raise ValueError("not a PNG or PGM image")
    except (ValueError, struct.error, zlib.error) as error:
        raise InputError(f"{path}: {error}") from None


def _pixels(height, width, channels=1):
    if not (0 < height and 0 < width) or height * width * channels > MAX_PIXELS:
        raise ValueError(f"image of {width}x{height}x{channels} values: empty or over "
                         f"{MAX_PIXELS}")


def _pgm(data):
    """Netpbm greymap, binary (P5) or text (P2), 8 or 16 bits."""
    fields, position = [], 2
    while len(fields) < 3:
        while position < len(data) and data[position:position + 1].isspace():
            position += 1
        if data[position:position + 1] == b"#":
            position = data.index(b"\n", position)
            continue
        end = position
        while end < len(data) and data[end:end + 1].isdigit():
            end += 1
        if end == position:
            raise ValueError("PGM header is not three numbers (width, height, maximum)")
        fields.append(int(data[position:end]))
        position = end
    width, height, maximum = fields
    _pixels(height, width)
    if not 0 < maximum < 65536:
        raise ValueError(f"PGM maximum value {maximum} outside 1..65535")
    if data[:2] == b"P2":
        values = np.array(data[position:].split()[:height * width + 1], np.int64)
    else:
        dtype = np.dtype(">u2" if maximum > 255 else np.uint8)
        body = data[position + 1:position + 1 + height * width * dtype.itemsize]
        values = np.frombuffer(body, dtype)
    if values.size != height * width or values.max(initial=0) > maximum:
        raise ValueError(f"PGM data is not {height * width} values within 0..{maximum}")
    return _bytes(values, maximum).reshape(height, width)


def _bytes(values, maximum):
    """Samples of 0..maximum as uint8 0..255, rounded to the nearest."""
    if maximum == 255:
        return values.astype(np.uint8)
    return ((values.astype(np.int64) * 255 + maximum // 2) // maximum).astype(np.uint8)


def _png(data):
    """PNG, non-interlaced, 8 or 16 bits, grey / grey+alpha / RGB / RGBA."""
    position, header, compressed = len(PNG_SIGNATURE), None, []
    while True:
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        crc, = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        if len(body) != length or zlib.crc32(kind + body) != crc:
            raise ValueError(f"PNG chunk {kind!r} truncated or corrupted (CRC)")
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG has no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth not in (8, 16) or colour not in PNG_CHANNELS or interlace:
        raise ValueError(f"PNG of bit depth {depth}, colour type {colour}, interlace "
                         f"{interlace}: only 8/16-bit non-interlaced grey or RGB(A) are read")
    channels = PNG_CHANNELS[colour]
    _pixels(height, width, channels)
    pixel = channels * depth // 8
    stride = width * pixel
    expected = height * (stride + 1)
    inflater = zlib.decompressobj()
    raw = inflater.decompress(b"".join(compressed), expected)
    if len(raw) != expected or inflater.unconsumed_tail:
        raise ValueError(f"PNG image data is not {expected} bytes")
    rows = _unfilter(np.frombuffer(raw, np.uint8).reshape(height, stride + 1), pixel)
    if depth == 16:
        rows = _bytes(rows.view(">u2"), 65535)
    image = rows.reshape(height, width, channels)
    return image[:, :, 0] if channels == 1 else image


def _unfilter(rows, pixel):
    """Undo PNG's per-row filters (None, Sub, Up, Average, Paeth)."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, stride), np.uint8)
    previous = np.zeros(stride, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            current = line
        elif kind == 1:         # each byte adds the one a pixel to its left: a running sum
            current = line.reshape(-1, pixel).cumsum(axis=0).reshape(-1) & 255
        elif kind == 2:
            current = (line + previous) & 255
        elif kind in (3, 4):
            current = line.copy()
            for x in range(stride):
                left = current[x - pixel] if x >= pixel else 0
                up, corner = previous[x], previous[x - pixel] if x >= pixel else 0
                if kind == 3:
                    guess = (left + up) >> 1
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                current[x] = (current[x] + guess) & 255
        else:
            raise ValueError(f"PNG row {y} has unknown filter {kind}")
        out[y] = current
        previous = current
    return out
