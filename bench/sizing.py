"""Shapes against a budget: does this MLP fit, and which is the largest that does.

A shape fits a side (this board, or the remote side) when all of these hold:
its time by the line is within the budget, at a size the sweep measured
(bench.budget says why nothing else counts); the memory it needs to load
on that line's backend is within the memory available (bench.memory); and
``Runtime`` with its defaults loads it: its file within the loader's limit,
its work and memory within the default ``edgebnn.Limits``. These are
counted, not measured, so a shape over one does not fit wherever its time
lies.
"""
from .fit import distrust, predict
from .memory import megabytes, needs, refusal
from .shapes import mlp_weights, shape_name


def verdict(sizes, line, name, ms, memory=None):
    """Whether ``sizes`` fits ``ms`` and ``memory`` (bytes, None: not checked) on one line.

    ``name`` is the line's name ("float", "binary/c", ...), which says the
    backend. Returns the prediction with ``fits`` (True, False, or None: not
    known), ``limit`` (what it fails on: "memory", "file", "limits", "time", or for
    None "refused" / "not measured") and ``why`` in words.
    """
    weights = mlp_weights(sizes)
    need = needs(sizes, name)
    row = {"sizes": sizes, "weights": weights, "memory": need, **predict(line, weights)}
    if memory is not None and need["peak"] > memory:
        return dict(row, fits=False, limit="memory", why=f"needs {megabytes(need['peak'])} to "
                                                         f"load, over the {megabytes(memory)} available")
    refused = refusal(sizes, name)
    if refused:
        return dict(row, fits=False, limit=refused[0], why=refused[1])
    if "refused" in row:
        return dict(row, fits=None, limit="refused", why="the line is refused")
    time = f"{row['ms']:.3f} ms"
    if row["outside"] != 1.0:
        return dict(row, fits=None, limit="not measured",
                    why=f"{time} by the line, but {row['outside']:,.2f}x outside the sizes "
                        f"measured: NOT MEASURED")
    if row["ms"] > ms:
        return dict(row, fits=False, limit="time", why=f"{time} > {ms:g} ms")
    return dict(row, fits=True, limit=None, why=f"{time}, {megabytes(need['peak'])} to load")


def family_shape(family, width):
    """``n_in-width-...-width-n_out`` for ``family = (n_in, hidden layers, n_out)``."""
    n_in, depth, n_out = family
    return (n_in,) + (width,) * depth + (n_out,)


def widest_width(test, low=1):
    """The largest width from ``low`` on for which ``test`` holds (it holds at ``low``,
    and once it fails it fails for every wider shape)."""
    high = low + 1
    while test(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if test(middle) else (low, middle)
    return low


def largest_loadable(family, name, memory=None):
    """Weights of the widest shape of ``family`` that loads on line ``name``: within
    ``memory`` (bytes, None: any) and the loader's file limit."""
    def loads(width):
        sizes = family_shape(family, width)
        return not refusal(sizes, name) and (memory is None or needs(sizes, name)["peak"] <= memory)
    return mlp_weights(family_shape(family, widest_width(loads))) if loads(1) else 0


def propose(family, line, name, ms, memory=None):
    """The largest shape of ``family`` (n_in, hidden layers, n_out) that fits, and what
    stops the next wider one.

    ``{"refused": reasons}`` for a refused line; ``{"sizes": None, "narrowest":
    verdict}`` when not even the narrowest shape measured fits; else the shape's
    verdict with ``stop``: the next wider shape's limit ("time", "memory",
    "file", "limits", or "not measured" when it lies past the largest size measured).
    """
    reasons = distrust(line)
    if reasons:
        return {"refused": reasons}
    if mlp_weights(family_shape(family, 1)) >= line.low:
        first = 1
    else:                                   # the narrowest shape the sweep measured
        first = widest_width(lambda w: mlp_weights(family_shape(family, w)) < line.low) + 1
    narrowest = verdict(family_shape(family, first), line, name, ms, memory)
    if not narrowest["fits"]:
        return {"sizes": None, "narrowest": narrowest}
    width = widest_width(lambda w: verdict(family_shape(family, w), line, name, ms, memory)["fits"],
                    first)
    wider = verdict(family_shape(family, width + 1), line, name, ms, memory)
    return dict(verdict(family_shape(family, width), line, name, ms, memory), stop=wider["limit"])


STOPS = {"time": "a wider one takes longer than the budget",
         "memory": "a wider one needs more memory than there is",
         "file": "a wider one's file is over the loader's limit",
         "limits": "a wider one is over the runtime's default Limits",
         "not measured": "wider ones were not measured"}


def format_proposal(proposal, line):
    """A proposal in one line of text."""
    if proposal["sizes"] is None:
        narrowest = proposal["narrowest"]
        return (f"none: the narrowest measured, {shape_name(narrowest['sizes'])}, does not fit "
                f"({narrowest['why']})")
    text = (f"{shape_name(proposal['sizes'])} ({proposal['weights']:,} weights): "
            f"{proposal['why']}; {STOPS[proposal['stop']]}")
    if proposal["stop"] == "not measured":
        text += f" (the largest size measured is {line.high:,.0f} weights)"
    return text
