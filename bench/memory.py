"""The memory an MLP needs on each backend, and the memory and caches a machine has.

Counted from the layer sizes the way the runtime lays a loaded model out
(tests/test_bench.py checks each count against tracemalloc on real loads):

- float, NumPy: each weight as float32, transposed (4 bytes a weight), a
  bias and an output buffer per layer. Loading reads a layer's (out, in)
  array and then transposes it, so while a layer loads it is held twice.
- int8 (``--weights int8``), C kernel: each weight as an int8 twice (as
  stored, and padded to rows of 32 bytes), a scale, a bias and an output per
  output; while a layer loads, its weights' magnitudes once more.
- binary, C kernel: the signs packed 8 a byte, held twice (the layer's
  copy as the file has it, and the kernel's with rows padded to whole
  64-bit words), an int32 threshold and a flip byte per output. On a CPU
  with the AVX-512 path, a third copy: the kernel's rows regrouped 8 by 8
  (bnn_dense_lanes); counted as the kernel on the machine counting lays
  out, so run ``budget`` on the board or expect that copy's difference.
- binary, NumPy twin: the packed signs, and every sign unpacked to an int32
  (4 bytes a weight, 32 times the C kernel's packed bits); unpacking goes
  through a byte per sign.

Binary nets are the sweep's: float input, a sign, binary dense layers, a
float batch norm before the scores. Left out: Python's own objects (20-50
KB a model) and the NumPy twin's per-call temporaries (one input's signs
unpacked, a few KB). A file whose
arrays exceed ``edgebnn.packed.format.MAX_MODEL_BYTES`` is refused by the loader,
whatever the memory.
"""
import os

from edgebnn.bitpack import sign_bytes, word_padded
from edgebnn.packed.format import MAX_MODEL_BYTES
from edgebnn.layers import BatchNorm, BinaryDense, Dense, DenseInt8, Sign
from edgebnn.limits import Cost, Limits


def _dense_layers(sizes, line):
    """``(resident, extra while loading, file)`` bytes of each layer, in load order."""
    kind, _, backend = line.partition("/")
    pairs = list(zip(sizes, sizes[1:]))
    if kind == "float":
        return [(4 * n_in * n_out + 8 * n_out, 4 * n_in * n_out, 4 * (n_in * n_out + n_out))
                for n_in, n_out in pairs]
    if kind == "int8":
        # DenseInt8 on the C kernel: the weights as stored and padded, scale, bias, output
        # and the quantized input (DenseInt8.shape_cost); while it loads, |weights| once more
        # and NumPy's buffer (64 KiB) for summing them as int64
        return [(DenseInt8.shape_cost(n_out, n_in).memory_c, n_in * n_out + (1 << 16),
                 n_in * n_out + 8 * n_out) for n_in, n_out in pairs]
    if kind != "binary" or backend not in ("c", "numpy"):
        raise ValueError(f"line {line!r}: the memory of float, int8 (on the C kernel), "
                         f"binary/c and binary/numpy nets is known")
    layers = [(word_padded(sign_bytes(sizes[0])), 0, 0)]                  # the sign's bits
    for i, (n_in, n_out) in enumerate(pairs):
        row = sign_bytes(n_in)
        packed, padded = n_out * row, n_out * word_padded(row)
        last = i == len(pairs) - 1
        outputs = 0 if last else 5 * n_out                             # threshold + flip
        out_buffer = 4 * n_out if last else word_padded(sign_bytes(n_out))
        if backend == "c":
            layers.append((packed + padded + lanes_bytes(n_out, word_padded(row)) + outputs
                           + out_buffer, 0, packed + outputs))
        else:
            signs = 4 * 8 * padded                                     # int32 per padded bit
            flips = 0 if last else n_out                               # kept as booleans
            layers.append((packed + signs + outputs + flips + out_buffer,
                           padded + signs // 4, packed + outputs))
    n = sizes[-1]
    layers.append((12 * n, 0, 8 * n))                                  # batch norm
    return layers


def lanes_bytes(n_out, row_bytes):
    """Bytes of the C kernel's regrouped rows on this machine (0 where its CPU needs none)."""
    from edgebnn.kernels import c_available
    if not c_available():
        return 0
    from edgebnn.kernels.c_library import lib
    return lib.bnn_dense_lanes_bytes(n_out, row_bytes)


def needs(sizes, line):
    """``{"resident", "peak", "file"}`` bytes of an MLP of ``sizes`` on ``line``.

    ``resident``: weights and work buffers once loaded; ``peak``: the most
    held while loading, the file's bytes included (the loader reads the
    whole file to check its seal, then parses it from memory); ``file``: the
    arrays the loader reads (its limit is ``MAX_MODEL_BYTES``).
    """
    layers = _dense_layers(tuple(sizes), line)
    file = sum(f for _, _, f in layers)
    held, peak = 0, 0
    for resident, extra, _ in layers:
        peak = max(peak, held + resident + extra)
        held += resident
    return {"resident": held, "peak": file + peak, "file": file}


def refusal(sizes, line):
    """Why ``Runtime`` with its defaults would refuse this net: ``(limit, words)``, or None.

    "file": its arrays are over ``MAX_MODEL_BYTES``; "limits": its cost per
    sample is over the default ``edgebnn.Limits``, summed from the layers'
    own ``shape_cost`` as the loader sums them (left out: the input's
    conversion, a few KB).
    """
    need = needs(sizes, line)
    if need["file"] > MAX_MODEL_BYTES:
        return "file", (f"its arrays ({megabytes(need['file'])}) are over the loader's limit "
                        f"(edgebnn.packed.format.MAX_MODEL_BYTES)")
    kind, _, backend = line.partition("/")
    pairs = list(zip(sizes, sizes[1:]))
    if kind == "float":
        costs = [Dense.shape_cost(n_in, n_out) for n_in, n_out in pairs]
    elif kind == "int8":
        costs = [DenseInt8.shape_cost(n_out, n_in) for n_in, n_out in pairs]
    else:
        costs = [Sign.shape_cost(sizes[0])]
        costs += [BinaryDense.shape_cost(n_out, sign_bytes(n_in), n_in, planes=False)
                  for n_in, n_out in pairs]
        costs.append(BatchNorm.shape_cost(sizes[-1]))
    passed = Limits().passed(sum(costs, Cost()), backend or "c")
    if passed:
        used, limit, what = passed
        return "limits", (f"{used:,} {what} per sample, over the default Limits' {limit:,} "
                          f"(load it with Runtime(..., limits=Limits(...)), knowingly)")
    return None


def meminfo(path="/proc/meminfo"):
    """``{"total": bytes, "available": bytes}`` from Linux's meminfo, {} where there is none.

    "available" is MemAvailable: what a new process can take without
    pushing others into swap.
    """
    wanted = {"MemTotal": "total", "MemAvailable": "available"}
    found = {}
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for row in f:
                key, _, value = row.partition(":")
                parts = value.split()
                if key in wanted and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                    found[wanted[key]] = int(parts[0]) * 1024
    except OSError:
        return {}
    return found


def caches(folder="/sys/devices/system/cpu/cpu0/cache"):
    """``{"L1d": bytes, "L2": bytes, ...}`` of the first CPU (Linux sysfs), {} where not told."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    found = {}
    try:
        for index in sorted(os.listdir(folder)):
            if not index.startswith("index"):
                continue
            with open(os.path.join(folder, index, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(folder, index, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(folder, index, "size")) as f:
                size = f.read().strip()
            if kind == "Instruction":
                continue
            number = size.rstrip("KMG")
            found[f"L{level}" + ("d" if kind == "Data" else "")] = \
                int(number) * units.get(size[-1:], 1)
    except (OSError, ValueError):
        return {}
    return found


def megabytes(count):
    """Bytes as text in MB (KB below one MB)."""
    if count < 1 << 20:
        return f"{count / 1024:,.0f} KB"
    return f"{count / 2**20:,.1f} MB"
