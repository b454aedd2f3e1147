"""Latency budget arithmetic: how large a network fits, here or across a link.

A fitted line ``seconds = a + b * weights`` (bench.fit) answers "how many
weights fit in this many milliseconds": ``(budget - a) / b``. Sending the
sample to a remote tier costs the link delay both ways, so the remote side
only has ``budget - 2 * link`` for its own network. In a Big-Little pair the
little net on the device answers first whenever the remote round trip
(``2 * link + big net time``) takes longer than the little net does.

An answer is only as good as the measurements under it: a line that
``fit.distrust`` finds wanting gives no answer, and a size outside the
range the sweep measured is reported as "not measured", with how far out it
lies, never as a result. Past the largest size measured the time per weight
changes wherever the weights outgrow a cache level or the RAM, which a
straight line cannot know.

Every function here is plain arithmetic on milliseconds, so it can be tested
against the worked numbers (40 ms with a 15 ms link leaves 10 ms remote).
"""
import math

from .fit import distrust, predict
from .memory import megabytes
from .shapes import mlp_weights, shape_name
from .sizing import format_proposal, largest_loadable, propose, verdict

# The paper's little and big networks.
LITTLE_SIZES = (784, 1000, 500, 2)
BIG_SIZES = (784, 2500, 2000, 1500, 1000, 500, 10)
LITTLE_WEIGHTS = mlp_weights(LITTLE_SIZES)      # 1,286,502
BIG_WEIGHTS = mlp_weights(BIG_SIZES)            # 11,972,510
FAMILY = (784, 2, 10)                           # the sweep's nets: 784-h-h-10


def check_budget(ms, link_ms=0.0):
    """Raise ValueError unless ``ms`` > 0 and the link leaves time (2 * link <= ms)."""
    if not (isinstance(ms, (int, float)) and math.isfinite(ms) and ms > 0):
        raise ValueError(f"the budget must be a positive number of milliseconds, got {ms}")
    if not (isinstance(link_ms, (int, float)) and math.isfinite(link_ms) and link_ms >= 0):
        raise ValueError(f"the link delay must be 0 or more milliseconds, got {link_ms}")
    if 2 * link_ms > ms:
        raise ValueError(f"a link delay of {link_ms:g} ms each way is larger than half the "
                         f"{ms:g} ms budget ({ms / 2:g} ms): no time is left for the remote side")


def remote_budget_ms(ms, link_ms):
    """What the remote network may take: the budget less the link delay both ways."""
    check_budget(ms, link_ms)
    return ms - 2 * link_ms


def line_ms(line, weights):
    """Milliseconds the fitted line predicts for a network of ``weights``."""
    return line.seconds(weights) * 1e3


def weights_within(ms, line):
    """The most weights whose predicted time fits in ``ms`` (0 when even the intercept does not)."""
    if not (math.isfinite(ms) and ms >= 0):
        raise ValueError(f"the time must be 0 or more milliseconds, got {ms}")
    if not line.slope > 0:
        raise ValueError(f"the line's slope must be positive, got {line.slope} s/weight")
    return max(0.0, (ms * 1e-3 - line.intercept) / line.slope)


def whole(weights):
    """A weight count as a whole number, rounding down (past float noise: 39.999999... -> 40)."""
    return math.floor(weights + 1e-6)


def largest(ms, line):
    """The answer to "how many weights fit in ``ms``" on one line.

    ``{"refused": reasons, "estimate": ...}`` when the line cannot be trusted
    (the estimate only says where to measure again; None when the line does
    not grow), else the line's ``weights`` and how far ``outside`` the
    measured sizes they are (1.0: measured).
    """
    reasons = distrust(line)
    if reasons:
        estimate = weights_within(ms, line) if line.slope > 0 else None
        return {"refused": reasons, "estimate": estimate}
    weights = weights_within(ms, line)
    return {"weights": weights, "outside": line.outside(weights)}


def round_trip_ms(link_ms, big_ms):
    """Time until the remote answer arrives: link out, big net, link back."""
    return 2 * link_ms + big_ms


def little_answers_first(little_ms, link_ms, big_ms):
    """True when the device's little net is done before the remote answer arrives."""
    return round_trip_ms(link_ms, big_ms) > little_ms


def break_even_link_ms(little_ms, big_ms):
    """The link delay (each way) above which the little net answers first (0: always)."""
    return max(0.0, (little_ms - big_ms) / 2)


def plan(ms, link_ms, lines, remote_lines=None, little_weights=LITTLE_WEIGHTS,
         big_weights=BIG_WEIGHTS, big_ms=None, family=FAMILY, shapes=(), memory=None,
         remote_memory=None):
    """Everything ``budget`` prints, as numbers.

    ``lines`` maps a line name ("float", "binary/c", ...) to this board's
    Line; ``remote_lines`` the server's (this board's when None). The big
    net is a float net on the remote side: its time is ``big_ms`` when the
    user measured it there, else the remote "float" line's prediction.
    Each side gets, per line, the weights that fit its time and the largest
    shape of ``family`` (n_in, hidden layers, n_out) that fits its time and
    memory (bytes, None: not checked); each of ``shapes`` gets a verdict
    per line and side.
    """
    remote_lines = lines if remote_lines is None else remote_lines
    remote_ms = remote_budget_ms(ms, link_ms)
    for name, count in (("little", little_weights), ("big", big_weights)):
        if count <= 0:
            raise ValueError(f"the {name} network needs a positive weight count, got {count}")
    if big_ms is None:
        big = predict(remote_lines.get("float") or next(iter(remote_lines.values())), big_weights)
        big["given"] = False
    elif not (math.isfinite(big_ms) and big_ms >= 0):
        raise ValueError(f"the big net's remote time must be 0 or more ms, got {big_ms}")
    else:
        big = {"ms": big_ms, "outside": 1.0, "given": True}
    little = {}
    for name, line in lines.items():
        row = predict(line, little_weights)
        if "ms" in row and "ms" in big:
            row.update(little_first=little_answers_first(row["ms"], link_ms, big["ms"]),
                       break_even_link_ms=break_even_link_ms(row["ms"], big["ms"]))
        little[name] = row
    sides = {"local": (lines, ms, memory), "remote": (remote_lines, remote_ms, remote_memory)}
    return {"ms": ms, "link_ms": link_ms, "remote_ms": remote_ms,
            "memory": memory, "remote_memory": remote_memory, "family": family,
            "refused": {name: distrust(line) for name, line in lines.items()},
            "remote_refused": {name: distrust(line) for name, line in remote_lines.items()},
            **{side: {name: dict(largest(budget, line),
                                 shape=propose(family, line, name, budget, room))
                      for name, line in pool.items()}
               for side, (pool, budget, room) in sides.items()},
            "shapes": [{"sizes": sizes, **{side: {name: verdict(sizes, line, name, budget, room)
                                                  for name, line in pool.items()}
                                           for side, (pool, budget, room) in sides.items()}}
                       for sizes in shapes],
            "little_weights": little_weights, "big_weights": big_weights, "big": big,
            "round_trip_ms": round_trip_ms(link_ms, big["ms"]) if "ms" in big else None,
            "little": little}


def all_answered(result):
    """True when every answer of ``plan`` rests on a trusted line, within the sizes
    measured, and every shape asked about has a verdict."""
    rows = [*result["local"].values(), *result["remote"].values(), *result["little"].values(),
            result["big"]]
    known = all(row["fits"] is not None for shape in result["shapes"]
                for side in ("local", "remote") for row in shape[side].values())
    return known and all("refused" not in row and row["outside"] == 1.0 for row in rows)


def _sig(number, digits=2):
    """``number`` rounded to ``digits`` significant digits, as a whole number."""
    if number < 1:
        return 1
    return int(round(number, digits - 1 - int(math.floor(math.log10(number)))))


def times(factor):
    """A ratio as "4.2x", with two decimals below 10 (1.04x)."""
    return f"{factor:,.{2 if factor < 10 else 1}f}x"


def format_answer(answer, line, ms):
    """One line's answer to a budget of ``ms``, in words that say what was measured."""
    weights, factor = answer["weights"], answer["outside"]
    if factor == 1.0:
        return f"{whole(weights):,} weights"
    if weights > line.high:
        return (f"more than {whole(line.high):,} weights (the largest measured, "
                f"{line_ms(line, line.high):.3f} ms, fits); the line's {whole(weights):,} is "
                f"{times(factor)} past it: NOT MEASURED")
    return (f"fewer than {whole(line.low):,} weights (the smallest measured takes "
            f"{line_ms(line, line.low):.3f} ms > {ms:g} ms): NOT MEASURED")


def ranges_to_measure(result):
    """``{(side, line name): (min weights, max weights, capped)}`` a sweep should cover to
    measure each answer that was not measured, or where a refused line points: from a
    quarter of it to 1.25x it, ``capped`` at the widest net that loads (in the memory,
    the loader's file limit and the default Limits).

    Each side gets its own range: a 40 ms answer here and a 10 ms one remote lie 4x
    apart, often on two sides of a cache's size, where one line would bend.
    """
    ranges = {}
    for side in ("local", "remote"):
        memory = result["memory" if side == "local" else "remote_memory"]
        for name, answer in result[side].items():
            if "refused" in answer:
                weights = answer["estimate"]
            else:
                weights = answer["weights"] if answer["outside"] > 1.0 else None
            if not weights:
                continue
            top = _sig(weights * 1.25)
            room = largest_loadable(result["family"], name, memory)
            high = min(top, room)
            ranges[side, name] = (min(_sig(weights / 4), high // 2), high, room < top)
    return ranges


def sweep_command(name, low, high, profile):
    """The sweep that measures line ``name`` from ``low`` to ``high`` weights."""
    kind, _, backend = name.partition("/")
    return (f"python -m edgebnn.bench sweep --kind {kind}{f' --backend {backend}' if backend else ''}"
            f" --min-weights {low:d} --max-weights {high:d} --profile {profile}")


def profile_name(side, name):
    """The file a sweep for one side and line saves its profile to, by budget's advice."""
    return f"{'server-' if side == 'remote' else ''}{name.replace('/', '-')}.json"


def unmeasured_advice(result):
    """How to measure the sizes the answers land on, a sweep per side and line, when some
    were not."""
    ranges = ranges_to_measure(result)
    if not ranges:
        return []
    out = ["NOT MEASURED is not an answer: past the sizes a sweep measured, the time per "
           "weight changes wherever the weights outgrow a cache or the RAM, and a straight "
           "line cannot know where; below them the fixed costs do not scale. Measure the "
           "sizes around each answer (for a refused line, around where it points), a sweep "
           "per line on the board, and per line on the server for the remote side (this "
           "board stands in for a server you cannot measure):"]
    for (side, name), (low, high, capped) in ranges.items():
        memory = result["memory" if side == "local" else "remote_memory"]
        room = "" if memory is None else f" in {megabytes(memory)},"
        out.append(f"  {sweep_command(name, low, high, profile_name(side, name))}" + (
            f"  (capped: wider nets do not load{room} or with the default Limits)"
            if capped else ""))
    options = [f"--{'remote-' if side == 'remote' else ''}profile {profile_name(side, name)}"
               for side, name in ranges]
    out.append("  then: python -m edgebnn.bench budget ... " + " ".join(options))
    return out


def refusal_lines(refused, load=None):
    """Why each refused line gives no answer, and what to do about it."""
    out = [f"{name} is refused: {'; '.join(reasons)}." for name, reasons in refused.items()
           if reasons]
    if out:
        now = "" if load is None else f", load average now {load[0]:g}"
        out.append("  To get an answer, measure again: on an idle machine (stop other jobs"
                   f"{now}), with more sizes and passes (--points 12 --passes 7), or over one "
                   "regime (--min-weights and --max-weights on one side of a bend).")
    return out


def memory_lines(result, words):
    """What memory the plan checked against, and what the caches mean for the lines."""
    def room(memory, source):
        return ("not checked (the profile does not say; give --memory-mb)" if memory is None
                else f"{megabytes(memory)} ({source})")
    out = [f"Memory here: {room(result['memory'], words.get('memory', 'given'))}; remote side: "
           f"{room(result['remote_memory'], words.get('remote_memory', 'given'))}."]
    caches = {name: size for name, size in (words.get("caches") or {}).items() if name != "L1d"}
    if caches:
        told = ", ".join(f"{name} {megabytes(size)}" for name, size in caches.items())
        out.append(f"Caches here: {told}. Weights beyond the L2 are read from a larger cache or "
                   "the RAM on every sample, so the time per weight rises where a net outgrows "
                   "one: a line measured across that size bends.")
    return out


def side_lines(answers, pool, budget_ms, family):
    """Per line: the weights within the budget, and the largest shape of the family that fits."""
    out = []
    for name, answer in answers.items():
        if "refused" in answer:
            out.append(f"  {name:<14} no answer: the line is refused (see above)")
            continue
        out.append(f"  {name:<14} by time: {format_answer(answer, pool[name], budget_ms)}")
        out.append(f"  {'':<14} largest {_family_name(family)}: "
                   f"{format_proposal(answer['shape'], pool[name])}")
    return out


def _family_name(family):
    n_in, depth, n_out = family
    return "-".join([str(n_in)] + ["h"] * depth + [str(n_out)])


def shape_lines(result):
    """The verdict on each shape asked about, per line, here and remote."""
    out = []
    for shape in result["shapes"]:
        weights = mlp_weights(shape["sizes"])
        out.append(f"{shape_name(shape['sizes'])} ({weights:,} weights):")
        for name, here in shape["local"].items():
            remote = shape["remote"].get(name)
            text = f"  {name:<14} here: {_fit_word(here)}"
            if remote is not None:
                text += f"; remote: {_fit_word(remote)}"
            out.append(text)
    return out


def _fit_word(row):
    word = {True: "fits", False: "does not fit", None: "unknown"}[row["fits"]]
    return f"{word} ({row['why']})"


def format_plan(result, lines, remote_lines=None, words=None):
    """``plan``'s numbers as the text ``budget`` prints.

    ``words`` name where things came from: "remote_source", "memory" and
    "remote_memory" (where the memory figures came from), "caches" (the
    measuring machine's) and "load" (this machine's load average now).
    """
    words = words or {}
    ms, link, remote = result["ms"], result["link_ms"], result["remote_ms"]
    refused = dict(result["refused"])
    if remote_lines is None:
        remote_lines = lines
    else:
        refused.update({f"the server's {name}": reasons
                        for name, reasons in result["remote_refused"].items()})
    out = refusal_lines(refused, words.get("load"))
    out += [""] if out else []
    out += memory_lines(result, words) + [""]
    out.append(f"Within {ms:g} ms on this board:")
    out += side_lines(result["local"], lines, ms, result["family"])
    source = words.get("remote_source", "this board's lines")
    out.append(f"Remote side: {ms:g} ms - 2 x {link:g} ms link = {remote:g} ms ({source}):")
    out += side_lines(result["remote"], remote_lines, remote, result["family"])
    out += unmeasured_advice(result)
    out += ["Check a shape on this board: python -m edgebnn.bench latency --shape SHAPE "
            "--kind float|binary [--backend c|numpy]"]
    if result["shapes"]:
        out += ["", f"Shapes asked about ({ms:g} ms here, {remote:g} ms remote):"] + shape_lines(result)
    return "\n".join(out + [""] + format_big_little(result))


def unmeasured(row):
    """"NOT MEASURED: ..." for a prediction outside the sizes swept, else ""."""
    return "" if row["outside"] == 1.0 else f"NOT MEASURED: {times(row['outside'])} outside the sizes swept"


def format_big_little(result):
    big, link = result["big"], result["link_ms"]
    head = (f"Big-Little: little net of {result['little_weights']:,} weights here, big net of "
            f"{result['big_weights']:,} weights remote (float): ")
    if "refused" in big:
        return [head + "its time is unknown (the remote float line is refused); give "
                "--remote-ms with the big net's time measured on the server"]
    note = unmeasured(big)
    out = [head + f"{big['ms']:.3f} ms there ({'given' if big['given'] else 'predicted'}"
           f"{'; ' + note if note else ''}), round trip {result['round_trip_ms']:.3f} ms with the "
           f"{link:g} ms link",
           "The little net answers first whenever that round trip exceeds the little net's time:",
           f"  {'line':<14} {'little ms':>10} {'first now':>10} {'first above link (ms each way)':>31}"]
    for name, row in result["little"].items():
        if "refused" in row:
            out.append(f"  {name:<14} {'refused':>10}")
            continue
        out.append(f"  {name:<14} {row['ms']:>10.3f} {'yes' if row['little_first'] else 'no':>10} "
                   f"{row['break_even_link_ms']:>31.3f}  {unmeasured(row)}".rstrip())
    return out
