"""Latency budget arithmetic: how large a network fits, here or across a link.

A fitted line ``seconds = a + b * weights`` (bench.fit) answers "how many
weights fit in this many milliseconds": ``(budget - a) / b``. Sending the
sample to a remote tier costs the link delay both ways, so the remote side
only has ``budget - 2 * link`` for its own network. In a Big-Little pair the
little net on the device answers first whenever the remote round trip
(``2 * link + big net time``) takes longer than the little net does.

Every function here is plain arithmetic on milliseconds, so it can be tested
against the worked numbers (40 ms with a 15 ms link leaves 10 ms remote).
"""
import math

from .shapes import mlp_weights

# The paper's little and big networks.
LITTLE_SIZES = (784, 1000, 500, 2)
BIG_SIZES = (784, 2500, 2000, 1500, 1000, 500, 10)
LITTLE_WEIGHTS = mlp_weights(LITTLE_SIZES)      # 1,286,502
BIG_WEIGHTS = mlp_weights(BIG_SIZES)            # 11,972,510


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
         big_weights=BIG_WEIGHTS, big_ms=None):
    """Everything ``budget`` prints, as numbers.

    ``lines`` maps a line name ("float", "binary/c", ...) to this board's
    Line; ``remote_lines`` the server's (this board's when None). The big
    net is a float net on the remote side: its time is ``big_ms`` when the
    user measured it there, else the remote "float" line's prediction.
    """
    remote_lines = lines if remote_lines is None else remote_lines
    remote_ms = remote_budget_ms(ms, link_ms)
    for name, count in (("little", little_weights), ("big", big_weights)):
        if count <= 0:
            raise ValueError(f"the {name} network needs a positive weight count, got {count}")
    big_given = big_ms is not None
    if big_ms is None:
        big_line = remote_lines.get("float") or next(iter(remote_lines.values()))
        big_ms = line_ms(big_line, big_weights)
    elif not (math.isfinite(big_ms) and big_ms >= 0):
        raise ValueError(f"the big net's remote time must be 0 or more ms, got {big_ms}")
    little = {}
    for name, line in lines.items():
        little_ms = line_ms(line, little_weights)
        little[name] = {"little_ms": little_ms,
                        "little_first": little_answers_first(little_ms, link_ms, big_ms),
                        "break_even_link_ms": break_even_link_ms(little_ms, big_ms)}
    return {"ms": ms, "link_ms": link_ms, "remote_ms": remote_ms,
            "local": {name: weights_within(ms, line) for name, line in lines.items()},
            "remote": {name: weights_within(remote_ms, line) for name, line in remote_lines.items()},
            "little_weights": little_weights, "big_weights": big_weights, "big_ms": big_ms,
            "big_ms_given": big_given,
            "round_trip_ms": round_trip_ms(link_ms, big_ms), "little": little}


def format_plan(result, remote_source="this board's lines"):
    """``plan``'s numbers as the text ``budget`` prints."""
    ms, link, remote = result["ms"], result["link_ms"], result["remote_ms"]
    out = [f"Largest network within {ms:g} ms on this board:"]
    out += [f"  {name:<14} {whole(count):>16,} weights" for name, count in result["local"].items()]
    out.append(f"Remote side: {ms:g} ms - 2 x {link:g} ms link = {remote:g} ms "
               f"({remote_source}):")
    out += [f"  {name:<14} {whole(count):>16,} weights" for name, count in result["remote"].items()]
    out.append(f"Big-Little: little net of {result['little_weights']:,} weights here, big net of "
               f"{result['big_weights']:,} weights remote (float): {result['big_ms']:.3f} ms there "
               f"({'given' if result['big_ms_given'] else 'predicted'}), "
               f"round trip {result['round_trip_ms']:.3f} ms with the {link:g} ms link")
    out += ["The little net answers first whenever that round trip exceeds the little net's time:",
            f"  {'line':<14} {'little ms':>10} {'first now':>10} {'first above link (ms each way)':>31}"]
    for name, row in result["little"].items():
        out.append(f"  {name:<14} {row['little_ms']:>10.3f} {'yes' if row['little_first'] else 'no':>10} "
                   f"{row['break_even_link_ms']:>31.3f}")
    return "\n".join(out)
