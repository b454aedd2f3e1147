"""The benchmark harness a user runs on the board before deploying.

    python -m edgebnn.bench latency MODEL.h5      per-sample latency of one model
    python -m edgebnn.bench sweep                 time vs size, fitted lines, the board's profile
    python -m edgebnn.bench budget --ms 2         the largest networks that fit a budget
    python -m edgebnn.bench compare --shape 784-1000-500-10   vs onnxruntime and PyTorch
    python -m edgebnn.bench report                reports/bench.md from all of the above

Installed, the same is the ``edgebnn-bench`` command. BLAS runs on one
thread (set OPENBLAS_NUM_THREADS yourself to change that; bench.timing
says how): per-sample latency on a small board is a one-core question.
Bad arguments exit with code 2 and a message naming the problem;
``budget`` times candidate nets here (bench.measured) unless given a profile;
it exits with 1 when a line got no answer in the time allowed, or, from a
profile, when an answer is refused or lies outside the sizes measured (the
text says which, and what to measure).
"""
import argparse
import json
import shlex
import sys

from . import budget
from .shapes import parse_shape
from .timing import single_threaded
from edgebnn.commands import COUNT, NON_NEGATIVE, POSITIVE, POSITIVE_INT, command_parser, \
    model_path, quiet_on_closed_pipe


def _shape(text):
    try:
        return parse_shape(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))


def build_parser():
    parser = command_parser("edgebnn.bench", __doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_latency_command, _sweep_command, _budget_command, _compare_command,
                _report_command):
        add(commands)
    return parser


def _latency_command(commands):
    latency = commands.add_parser("latency", help="per-sample latency of one model file")
    latency.add_argument("model", nargs="?", metavar="MODEL.h5", type=model_path)
    latency.add_argument("--shape", type=_shape, metavar="784-1000-500-10",
                         help="a random MLP of this shape instead of a file, as sweep builds "
                              "them: to check what budget proposes")
    latency.add_argument("--kind", choices=("float", "binary"), default="float",
                         help="the random MLP's kind, with --shape (float)")
    latency.add_argument("--runs", type=POSITIVE_INT, default=1000, help="timed calls (1000)")
    latency.add_argument("--warmup", type=COUNT, default=50, help="untimed calls first (50)")
    latency.add_argument("--backend", choices=("c", "numpy"),
                         help="binary kernel (default: C when built)")
    latency.add_argument("--input", default="random", metavar="random|FILE",
                         help="random samples, or a .npy/.npz array (one sample or a batch), "
                              "PNG or PGM image, read as edgebnn-classify reads it")
    latency.add_argument("--json", action="store_true", help="machine-readable output")
    latency.set_defaults(run=run_latency)


def _sweep_command(commands):
    sweep = commands.add_parser("sweep", help="time float and binary MLPs of growing size")
    _sweep_options(sweep)
    sweep.add_argument("--csv", default="sweep.csv", metavar="FILE", help="points (sweep.csv)")
    sweep.add_argument("--profile", default="sweep.json", metavar="FILE",
                       help="this board's profile for 'budget --profile' (sweep.json)")
    sweep.add_argument("--plot", default="sweep.png", metavar="FILE",
                       help="time vs weights, when matplotlib is installed (sweep.png)")
    sweep.add_argument("--json", action="store_true", help="print the profile instead of text")
    sweep.set_defaults(run=run_sweep)


def _budget_command(commands):
    plan = commands.add_parser("budget", help="the largest networks that fit a latency budget")
    plan.add_argument("--ms", type=POSITIVE, required=True, help="the latency budget")
    plan.add_argument("--link-ms", type=NON_NEGATIVE, default=0.0,
                      help="link delay to the remote side, each way (0)")
    plan.add_argument("--remote-ms", type=NON_NEGATIVE,
                      help="the big net's time on the remote side, if known (default: timed "
                           "here or at --remote-url; with --profile, the remote line's)")
    plan.add_argument("--profile", metavar="FILE", action="append",
                      help="this board's saved profile, or several (a later one's lines "
                           "replace an earlier one's), for a board you cannot run this on; "
                           "default: time the candidate nets here")
    plan.add_argument("--remote-profile", metavar="FILE", action="append",
                      help="the server's saved profile(s) (default: this board's lines)")
    plan.add_argument("--remote-url", metavar="URL",
                      help="a live V2 server (edgebnn-serve, MLServer) to time the big net on")
    plan.add_argument("--remote-model", metavar="NAME", help="the big net's name there")
    plan.add_argument("--max-seconds", type=POSITIVE, default=120.0,
                      help="time for measuring, without a profile (120)")
    plan.add_argument("--little-weights", type=POSITIVE_INT, default=budget.LITTLE_WEIGHTS,
                      help=f"little net on the device ({budget.LITTLE_WEIGHTS:,}: 784-1000-500-2)")
    plan.add_argument("--big-weights", type=POSITIVE_INT, default=budget.BIG_WEIGHTS,
                      help=f"big net remote ({budget.BIG_WEIGHTS:,}: 784-2500-2000-1500-1000-500-10)")
    plan.add_argument("--shape", type=_shape, nargs="+", action="extend", default=[],
                      metavar="784-1000-500-2", help="shapes to answer fit / does not fit for")
    plan.add_argument("--depth", type=POSITIVE_INT,
                      help="hidden layers of the shapes proposed (default: 2, or the profile's)")
    plan.add_argument("--memory-mb", type=POSITIVE,
                      help="memory for the model on the board (default: what this machine, or "
                           "the profiled one, had available: /proc/meminfo)")
    plan.add_argument("--backend", choices=("c", "numpy", "both"), default="both",
                      help="binary backends to time (both)")
    plan.add_argument("--quiet", action="store_true", help="no progress bar")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(run=run_budget)


def _compare_command(commands):
    compare = commands.add_parser("compare", help="this runtime vs onnxruntime and PyTorch")
    compare.add_argument("model", nargs="?", metavar="MODEL.h5|MODEL.onnx", type=model_path,
                         help="a packed model, or an ONNX file, converted here and run by "
                              "onnxruntime as it is")
    compare.add_argument("--shape", type=_shape, action="append", metavar="784-1000-500-10",
                         help="a random float MLP of this shape instead of a file (repeatable)")
    compare.add_argument("--backend", choices=("c", "numpy", "both"), default="both",
                         help="this runtime's backends to time (both)")
    compare.add_argument("--rounds", type=POSITIVE_INT, default=200,
                         help="interleaved rounds (200)")
    compare.add_argument("--input", default="random", metavar="random|FILE",
                         help="the sample: random values, or a file's first, read as "
                              "edgebnn-classify reads it (e.g. models/mnist-samples.npz)")
    compare.add_argument("--hot", action="store_true",
                         help="time each turn after an untimed call of its own (data cached)")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    compare.set_defaults(run=run_compare)


def _report_command(commands):
    report = commands.add_parser("report", help="write reports/bench.md (a few minutes)")
    report.add_argument("--out", default="reports", metavar="DIR", help="folder (reports)")
    report.add_argument("--quick", action="store_true", help="a small sweep, for trying it out")
    report.add_argument("--quiet", action="store_true", help="no progress bar")
    report.set_defaults(run=run_report)


def _sweep_options(parser):
    from .sweep import DEFAULT
    parser.add_argument("--min-weights", type=POSITIVE_INT, default=DEFAULT["min_weights"],
                        help=f"smallest network ({DEFAULT['min_weights']:,})")
    parser.add_argument("--max-weights", type=POSITIVE_INT, default=DEFAULT["max_weights"],
                        help=f"largest network ({DEFAULT['max_weights']:,})")
    parser.add_argument("--points", type=POSITIVE_INT, default=DEFAULT["points"],
                        help=f"sizes, evenly spaced in weights ({DEFAULT['points']})")
    parser.add_argument("--hidden-layers", type=POSITIVE_INT, default=2,
                        help="hidden layers of equal width, 784-h-...-h-10 (2)")
    parser.add_argument("--rounds", type=POSITIVE_INT, default=DEFAULT["rounds"],
                        help=f"interleaved rounds per size and pass ({DEFAULT['rounds']})")
    parser.add_argument("--passes", type=POSITIVE_INT, default=DEFAULT["passes"],
                        help=f"passes over all sizes, medians over all ({DEFAULT['passes']})")
    parser.add_argument("--kind", choices=("float", "binary", "both"), default="both",
                        help="nets to time (both); one kind alone can reach its own sizes")
    parser.add_argument("--backend", choices=("c", "numpy", "both"), default="both",
                        help="binary backends to time (both)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_latency(args):
    from . import latency
    if (args.model is None) == (args.shape is None):
        raise ValueError("latency takes either MODEL.h5 or --shape, not both or neither")
    if args.shape:
        import numpy as np
        from .binary import binary_mlp, float_mlp
        make = float_mlp if args.kind == "float" else binary_mlp
        model = make(np.random.default_rng(0), args.shape)
        name = f"random {args.kind} {'-'.join(map(str, args.shape))}"
    else:
        model = name = args.model
    result = latency.measure(model, args.runs, args.warmup, args.backend, args.input, name)
    if args.json:
        from .profile import machine_info
        return json.dumps(dict(result, machine=machine_info()), indent=2)
    return latency.format_report(result)


def run_sweep(args):
    from . import sweep
    from .profile import make_profile, save_profile
    from .shapes import sweep_shapes
    shapes = sweep_shapes(args.min_weights, args.max_weights, args.points, args.hidden_layers)
    result = sweep.run_sweep(shapes, sweep.line_names(args.kind, args.backend), args.rounds,
                             args.passes, progress=not args.quiet)
    profile = make_profile(result["lines"], result["points"])
    save_profile(profile, args.profile)
    sweep.write_csv(result["points"], args.csv)
    drawn = sweep.plot(result["points"], result["lines"], args.plot)
    if args.json:
        return json.dumps(profile, indent=2)
    plot_note = (f"plot: {args.plot}" if drawn else
                 "plot: skipped (matplotlib not installed: pip install 'edgebnn[plot]')")
    return "\n".join([sweep.format_points(result["points"]), "", sweep.format_lines(result["lines"]),
                      "", f"profile: {args.profile}   points: {args.csv}   {plot_note}"])


def family(points, depth=None):
    """``(n_in, hidden layers, n_out)`` of the nets a sweep measured, ``depth`` hidden layers
    if given (784-h-h-10 when the points do not say)."""
    try:
        sizes = parse_shape(points[0]["shape"])
    except (ValueError, KeyError, IndexError, TypeError):
        n_in, hidden, n_out = budget.FAMILY
        return n_in, depth or hidden, n_out
    return sizes[0], depth or len(sizes) - 2, sizes[-1]


def _memory(machine, given_mb, what):
    """Memory for the model in bytes, and where the figure came from."""
    if given_mb is not None:
        return int(given_mb * 2**20), "--memory-mb"
    available = ((machine or {}).get("memory") or {}).get("available")
    return available, f"available on {what} when it was profiled"


def run_budget(args):
    budget.check_budget(args.ms, args.link_ms)      # before any measuring
    if (args.remote_url is None) != (args.remote_model is None):
        raise ValueError("--remote-url and --remote-model go together")
    if args.profile is None:
        return run_measured_budget(args)
    if args.remote_url:
        raise ValueError("--remote-url times the big net while measuring here: leave out "
                         "--profile, or give the server's time with --remote-ms")
    return run_profile_budget(args)


def run_measured_budget(args):
    """The answers timed here: the largest nets that fit, the little and big nets."""
    from . import measured
    from .memory import meminfo
    from .profile import machine_info
    from .sweep import line_names
    if args.remote_profile:
        raise ValueError("--remote-profile goes with --profile (the lines of both boards)")
    big = None
    if args.remote_ms is not None:
        big = {"ms": args.remote_ms, "source": "given"}
    elif args.remote_url:
        big = dict(measured.server_ms(args.remote_url, args.remote_model),
                   source=f"{args.remote_model} at {args.remote_url}, timed from here")
    memory = (int(args.memory_mb * 2**20) if args.memory_mb is not None
              else meminfo().get("available"))
    n_in, hidden, n_out = budget.FAMILY
    from edgebnn.kernels import c_available
    names = line_names("both", args.backend)        # and int8 weights, on the C kernel
    names[1:1] = ["int8"] if c_available() and args.backend != "numpy" else []
    result = measured.plan(args.ms, args.link_ms, names,
                           (n_in, args.depth or hidden, n_out), memory, args.max_seconds, big,
                           args.shape, progress=not args.quiet)
    status = 0 if measured.answered(result) else 1
    machine = machine_info()
    if args.json:
        return json.dumps(dict(result, machine=machine), indent=2), status
    command = shlex.join(["python", "-m", "edgebnn.bench", *args.words])
    return measured.format_plan(result, machine["processor"], command), status


def run_profile_budget(args):
    """The answers from saved profiles' lines, for a board this does not run on."""
    from .profile import load_average, load_profiles
    remote_profile, remote = (load_profiles(args.remote_profile) if args.remote_profile
                              else ({}, None))
    profile, lines = load_profiles(args.profile)
    source = (f"profile {', '.join(args.profile)}" if args.profile else "a quick sweep now")
    memory, memory_source = _memory(profile.get("machine"), args.memory_mb, "this board")
    if remote is None:
        remote_memory, remote_memory_source = memory, memory_source
    else:
        remote_memory, remote_memory_source = _memory(remote_profile.get("machine"), None,
                                                      "the server")
    result = budget.plan(args.ms, args.link_ms, lines, remote, args.little_weights,
                         args.big_weights, args.remote_ms, family(profile["points"], args.depth),
                         args.shape, memory, remote_memory)
    status = 0 if budget.all_answered(result) else 1
    if args.json:
        return json.dumps(dict(result, lines={k: v.as_dict() for k, v in lines.items()},
                               source=source), indent=2), status
    from .sweep import format_lines
    remote_source = (f"server profile {', '.join(args.remote_profile)}" if args.remote_profile
                     else "this board's lines")
    words = {"remote_source": remote_source, "memory": memory_source,
             "remote_memory": remote_memory_source, "load": load_average(),
             "caches": (profile.get("machine") or {}).get("caches")}
    load = (profile.get("machine") or {}).get("load_average")
    text = "\n".join([f"Lines from {source} (load average then: {load}):", format_lines(lines), "",
                      budget.format_plan(result, lines, remote, words)])
    return text, status


def run_compare(args):
    from . import compare
    if (args.model is None) == (args.shape is None):
        raise ValueError("compare takes either MODEL.h5 or --shape (one or more), not both or neither")
    targets = [(args.model, args.model)] if args.model else \
        [(sizes, "-".join(map(str, sizes))) for sizes in args.shape]
    results = [compare.run_compare(compare.load(target), label, args.backend, args.rounds,
                                   hot=args.hot, source=args.input,
                                   onnx_file=target if str(target).endswith(".onnx") else None)
               for target, label in targets]
    if args.json:
        return json.dumps(results, indent=2)
    return "\n\n".join(compare.format_result(result) for result in results)


def run_report(args):
    from . import report
    path = report.build_report(args.out, quick=args.quick, progress=not args.quiet)
    return f"wrote {path}"


@quiet_on_closed_pipe
def main(argv=None):
    if argv is None:                    # the program itself, not a test calling it
        single_threaded()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.words = list(sys.argv[1:] if argv is None else argv)
    try:
        output = args.run(args)
    except (ValueError, OSError) as error:
        parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")
    text, status = output if isinstance(output, tuple) else (output, 0)
    print(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
