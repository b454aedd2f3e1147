"""reports/bench.md in one command: sweep, fit, budget and framework comparison.

    python -m edgebnn.bench report            (a few minutes)

Every section names the command that gives the same numbers on its own; the
report runs them in-process, one after another, on the same machine state,
and writes the sweep's plot, points and profile beside the markdown.
"""
import os
import time

import numpy as np

from . import budget, compare, latency, sweep
from .binary import binary_mlp, float_mlp
from .fit import distrust
from .memory import megabytes
from .profile import load_average, make_profile, machine_info, save_profile
from .progress import Progress
from .shapes import shape_name, sweep_shapes

COMPARE_SHAPES = [(784, 1000, 500, 2), (784, 1000, 500, 10), (784, 2500, 2000, 1500, 1000, 500, 10)]
BUDGET_MS, LINK_MS = 40.0, 15.0


def _table(header, rows, numbers=True):
    """A markdown table; columns after the first right-aligned when they hold ``numbers``."""
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---:" if i and numbers else "---" for i in range(len(header))) + " |"]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(out)


def _cache_text(info):
    """The machine's caches as text, like "L2 2.0 MB, L3 105.0 MB"."""
    told = [f"{name} {megabytes(size)}" for name, size in info["caches"].items() if name != "L1d"]
    return ", ".join(told) or "not told by this system"


def _us(seconds):
    return f"{seconds * 1e6:,.1f}"


def machine_section(info):
    rows = [(key, value) for key, value in info.items()]
    return "## Machine\n\n" + _table(("what", "value"), rows, numbers=False)


def sweep_section(result, settings, files, drawn, cache):
    command = (f"python -m edgebnn.bench sweep --min-weights {settings['min_weights']} "
               f"--max-weights {settings['max_weights']} --points {settings['points']} "
               f"--rounds {settings['rounds']} --passes {settings['passes']} --profile {files['profile']} "
               f"--csv {files['csv']} --plot {files['plot']}")
    fit_rows = [(name, f"{line.slope * 1e9:.4f}", f"{line.intercept * 1e6:.1f}", f"{line.r2:.4f}",
                 f"{line.drift:.1%}", "; ".join(distrust(line)) or "yes")
                for name, line in result["lines"].items()]
    point_rows = [(p["line"], p["shape"], f"{p['weights']:,}", _us(p["seconds"]))
                  for p in result["points"]]
    plot = (f"![per-sample time vs weights]({os.path.basename(files['plot'])})" if drawn
            else "(no plot: matplotlib is not installed)")
    return "\n\n".join([
        "## Time vs size (sweep)", f"```sh\n{command}\n```",
        "Float (Dense + ReLU) and binary (sign, binary dense with thresholds, binary dense "
        "dots, batch norm) MLPs 784-h-h-10 with random weights; per-sample `classify` time "
        "is the median of interleaved rounds. Fitted `time = intercept + slope * weights`:",
        _table(("line", "slope (ns/weight)", "intercept (us)", "R^2", "drift between passes",
                "usable"), fit_rows),
        f"A line bends where the networks outgrow a cache (here {cache}; a float "
        "weight takes 4 bytes), more so while other jobs load the memory bus; a board with "
        "a small cache is in one regime above a few hundred thousand weights. To plan for sizes "
        "on one side of a bend, fit that side alone (`--min-weights`, `--max-weights`).", plot,
        _table(("line", "shape", "weights", "us per sample"), point_rows)])


def _answer_cell(answer, line):
    """A budget answer in a table cell: the weights, or why there is none."""
    if "refused" in answer:
        return "refused (see below)"
    if answer["outside"] == 1.0:
        return f"{budget.whole(answer['weights']):,}"
    if answer["weights"] > line.high:
        return f"> {budget.whole(line.high):,} (line: {budget.whole(answer['weights']):,}, not measured)"
    return f"< {budget.whole(line.low):,} (not measured)"


def budget_section(result, lines, files):
    command = f"python -m edgebnn.bench budget --ms {BUDGET_MS:g} --link-ms {LINK_MS:g} --profile {files['profile']}"
    rows = []
    for name, row in result["little"].items():
        little = (("refused", "-", "-") if "refused" in row else
                  (f"{row['ms']:.3f}{' (not measured)' if row['outside'] != 1.0 else ''}",
                   "yes" if row["little_first"] else "no", f"{row['break_even_link_ms']:.3f}")
                  if "little_first" in row else (f"{row['ms']:.3f}", "-", "-"))
        rows.append((name, _answer_cell(result["local"][name], lines[name]),
                     _answer_cell(result["remote"][name], lines[name]), *little))
    header = ("line", f"weights within {BUDGET_MS:g} ms here",
              f"weights within {result['remote_ms']:g} ms remote",
              f"little net ({budget.LITTLE_WEIGHTS:,} w) ms", f"little first at {LINK_MS:g} ms link",
              "little first above link (ms each way)")
    big = result["big"]
    big_text = ("takes a time nobody can say (the float line is refused)" if "refused" in big else
                f"would take {big['ms']:.3f} ms remote ({budget.unmeasured(big) or 'measured'}), so the round "
                f"trip is {result['round_trip_ms']:.3f} ms")
    return "\n\n".join([
        "## Latency budget", f"```sh\n{command}\n```",
        f"{BUDGET_MS:g} ms budget, {LINK_MS:g} ms link each way: the remote side has "
        f"{result['remote_ms']:g} ms (this board's lines stand in for the server's). The big net "
        f"({budget.BIG_WEIGHTS:,} weights, float) {big_text}. Answers past the sizes the sweep "
        "measured are not given as answers: the table says how far the line would reach.",
        _table(header, rows), f"```\n{budget.format_plan(result, lines, words=WORDS)}\n```"])


WORDS = {"memory": "available on this machine", "remote_memory": "available on this machine"}


def remeasure(result, lines, settings, out_dir, progress):
    """Sweep each line again, for each side, over the sizes its answer lands on (budget's
    advice); ``(lines here, lines remote, the sweep commands, budget's profile options)``."""
    sides = {"local": dict(lines), "remote": dict(lines)}
    commands, options = [], []
    for (side, name), (low, high, _) in budget.ranges_to_measure(result).items():
        path = os.path.join(out_dir, budget.profile_name(side, name))
        command = budget.sweep_command(name, low, high, path)
        again = sweep.run_sweep(sweep_shapes(low, high, settings["points"]), [name],
                                settings["rounds"], settings["passes"], progress)
        save_profile(make_profile(again["lines"], again["points"], command), path)
        sides[side][name] = again["lines"][name]
        commands.append(command)
        options.append(f"--{'remote-' if side == 'remote' else ''}profile {path}")
    return sides["local"], sides["remote"], commands, options


def time_proposals(result, seconds=4.0):
    """Each proposed shape timed directly, as ``latency --shape`` does: rows of
    (side, line, shape, predicted ms, median ms, trimmed mean ms, outliers)."""
    rows = []
    for side in ("local", "remote"):
        for name, answer in result[side].items():
            proposal = answer.get("shape") or {}
            if not proposal.get("sizes"):
                continue
            kind, _, backend = name.partition("/")
            make = float_mlp if kind == "float" else binary_mlp
            model = make(np.random.default_rng(0), proposal["sizes"])
            runs = int(min(1000, max(50, seconds * 1e3 / proposal["ms"])))
            timed = latency.measure(model, runs, 10, backend or None,
                                    name=shape_name(proposal["sizes"]))["inference_us"]
            rows.append((side, name, proposal["sizes"], proposal["ms"], timed["median"] / 1e3,
                         timed["trimmed_mean"] / 1e3, f"{timed['outliers']}/{timed['count']}"))
            del model
    return rows


def proposals_section(result, lines, remote_lines, commands, options, rows, load):
    files = " ".join(options)
    nothing = ("No shape was proposed (every answer above is refused or not measured), so none "
               "was timed." if not rows else None)
    table = [(side if side == "remote" else "here", name, shape_name(sizes), f"{predicted:.3f}",
              f"{median:.3f}", f"{trimmed:.3f}", f"{median / predicted - 1:+.1%}", outliers)
             for side, name, sizes, predicted, median, trimmed, outliers in rows]
    return "\n\n".join([
        "### Measured where the answers land",
        "Each line swept again, for each side, over the sizes its answer lands on, as "
        "`budget` advises (this machine stands in for the server):",
        "```sh\n" + "\n".join(commands) + f"\npython -m edgebnn.bench budget --ms {BUDGET_MS:g} "
        f"--link-ms {LINK_MS:g} {files}\n```",
        f"```\n{budget.format_plan(result, lines, remote_lines, words=WORDS)}\n```",
        nothing or "The proposed shapes timed directly (`python -m edgebnn.bench latency --shape "
        f"SHAPE --kind KIND --backend BACKEND`, single calls; load average at the end {load}):",
        *([] if nothing else [_table(("side", "line", "proposed shape", "predicted ms",
                                      "median ms", "trimmed mean ms", "median vs predicted",
                                      "outliers"), table)])])


def compare_section(results):
    shapes = " ".join(f"--shape {r['model']}" for r in results)
    names = list(dict.fromkeys(name for r in results for name in r["seconds"]))
    others = [n for n in ("onnxruntime", "torch") if n not in names]
    rows = []
    for r in results:
        base = r["seconds"][r["base"]]
        cells = [r["model"], f"{r['weights']:,}"] + [_us(r["seconds"][n]) if n in r["seconds"]
                                                     else "-" for n in names]
        cells += [f"{r['seconds'][n] / base:.2f}" for n in names if n != r["base"]]
        rows.append(cells)
    base = results[0]["base"]
    header = ["net", "weights"] + [f"{n} (us)" for n in names] + \
        [f"{n} / {base}" for n in names if n != base]
    versions = ", ".join(f"{k} {v}" for k, v in results[0]["versions"].items()) or "none"
    skipped = "".join(f"\n\n{name}: skipped (not installed)." for name in others)
    return "\n\n".join([
        "## This runtime vs onnxruntime and PyTorch", f"```sh\npython -m edgebnn.bench compare {shapes}\n```",
        "Random float MLPs, one sample per call, everything single-threaded (BLAS, torch "
        "`set_num_threads(1)`, onnxruntime intra/inter-op threads 1), medians of interleaved "
        f"rounds; a ratio above 1 means this runtime is faster. Other frameworks: {versions}.",
        _table(header, rows) + skipped,
        "```\n" + "\n\n".join(compare.format_result(r) for r in results) + "\n```"])


def build_report(out_dir="reports", quick=False, progress=True):
    """Run everything and write ``out_dir/bench.md`` with its assets; returns its path."""
    started = time.time()
    os.makedirs(out_dir, exist_ok=True)
    settings = sweep.QUICK if quick else sweep.DEFAULT
    files = {name: os.path.join(out_dir, file) for name, file in
             (("profile", "profile.json"), ("csv", "sweep.csv"), ("plot", "sweep.png"))}
    info = machine_info()
    result = sweep.run_sweep(sweep.default_shapes(settings), sweep.line_names(),
                             settings["rounds"], settings["passes"], progress)
    save_profile(make_profile(result["lines"], result["points"], f"python -m edgebnn.bench report "
                              f"--out {out_dir}", info), files["profile"])
    sweep.write_csv(result["points"], files["csv"])
    drawn = sweep.plot(result["points"], result["lines"], files["plot"])
    memory = (info.get("memory") or {}).get("available")
    planned = budget.plan(BUDGET_MS, LINK_MS, result["lines"], memory=memory, remote_memory=memory)
    if not quick:
        here, remote, commands, options = remeasure(planned, result["lines"], settings, out_dir,
                                                    progress)
        checked = budget.plan(BUDGET_MS, LINK_MS, here, remote, memory=memory, remote_memory=memory)
        timed = time_proposals(checked)
    shapes = COMPARE_SHAPES[:1] if quick else COMPARE_SHAPES
    bar = Progress(len(shapes), "compare", enabled=progress)
    compared = []
    for sizes in shapes:
        compared.append(compare.run_compare(compare.random_model(sizes), shape_name(sizes)))
        bar.step(shape_name(sizes))
    sections = [
        "# edgebnn benchmark report",
        f"Generated by `python -m edgebnn.bench report --out {out_dir}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')} in {time.time() - started:.0f} s. Timings are "
        "per sample, single-threaded, medians of interleaved rounds; absolute times drift "
        "with the machine's load, ratios measured in the same run hold better. Load average "
        f"(1, 5, 15 min) at the start {info['load_average']}, at the end {load_average()}.",
        machine_section(info), sweep_section(result, settings, files, drawn, _cache_text(info)),
        budget_section(planned, result["lines"], files)]
    if not quick:
        sections.append(proposals_section(checked, here, remote, commands, options, timed,
                                          load_average()))
    sections.append(compare_section(compared))
    path = os.path.join(out_dir, "bench.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join(sections) + "\n")
    return path
