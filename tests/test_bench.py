"""The benchmark harness (bench/): its arithmetic, files and error messages, never timings."""
import json
import math
import os

import numpy as np
import pytest

from edgebnn import models
from edgebnn.bench import budget
from edgebnn.bench.fit import MIN_R2, Line, distrust, fit_line, fit_lines
from edgebnn.bench.profile import load_profile, machine_info, make_profile, save_profile
from edgebnn.bench.shapes import mlp_weights, parse_shape, sizes_for, sweep_shapes
from edgebnn.bench.latency import outlier_note as latency_outlier_note
from edgebnn.bench.stats import percentile, summarize
from edgebnn import Runtime, save_model

from conftest import assert_same_sums, bench_cli as run_cli, random_mlp



def line_through(slope, intercept=0.0, sizes=(1e6, 2e7, 4e7, 6e7)):
    """An exact line with the measured points it passes through (seconds, weights)."""
    return Line(intercept, slope, 1.0, tuple((w, intercept + slope * w) for w in sizes))


def points_of(lines):
    """A profile's points for ``{name: Line}``."""
    return [{"line": name, "kind": name.partition("/")[0], "backend": name.partition("/")[2] or None,
             "shape": "?", "weights": w, "seconds": t, "rounds": 1}
            for name, line in lines.items() for w, t in line.points]


PAPER_LINE = line_through(1e-9)         # 1 ns per weight, no fixed cost, measured 1M..60M weights


# --- statistics --------------------------------------------------------------------------------

def test_summary_of_known_timings():
    stats = summarize([3.0, 1.0, 2.0, 4.0])
    assert stats["count"] == 4
    assert (stats["first"], stats["curr"], stats["min"], stats["max"]) == (3.0, 4.0, 1.0, 4.0)
    assert stats["mean"] == 2.5 and stats["median"] == 2.5
    assert stats["p90"] == pytest.approx(3.7)        # rank 2.7 of 0..3: 3 + 0.7 * (4 - 3)
    assert stats["p99"] == pytest.approx(3.97)
    assert stats["std"] == pytest.approx(math.sqrt(1.25))     # population std, as TFLite


def test_one_timing_has_no_spread():
    stats = summarize([5e-6])
    assert stats["min"] == stats["max"] == stats["median"] == stats["p99"] == 5e-6
    assert stats["std"] == 0.0


def test_percentiles_match_numpy_linear_interpolation():
    values = sorted(np.random.default_rng(0).exponential(size=101).tolist())
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_preempted_calls_are_counted_as_outliers_and_trimmed_away():
    # 990 calls of 24 us and 10 of 4 ms (the core given to another process)
    stats = summarize([24.0] * 495 + [4000.0] * 10 + [24.0] * 495)
    assert stats["mean"] == pytest.approx(63.76)         # pulled up 2.7x by 1% of the calls
    assert stats["median"] == 24.0 and stats["trimmed_mean"] == 24.0
    assert stats["outliers"] == 10 and stats["mean_without_outliers"] == 24.0
    note = latency_outlier_note(stats, load=[1.5, 1.0, 0.5])
    assert "10 of 1000 calls (1.0%) took over 3x the median (72.0 us)" in note
    assert "add 39.8 us to the mean" in note and "load average 1.5" in note


def test_trimmed_mean_leaves_out_five_percent_at_each_end():
    stats = summarize(list(range(1, 21)))       # 1..20: drops 1 and 20
    assert stats["trimmed_mean"] == pytest.approx(10.5) and stats["outliers"] == 0
    assert summarize([5.0])["trimmed_mean"] == 5.0
    assert "Outliers: none" in latency_outlier_note(summarize([2.0, 2.0, 5.0]))


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no timings"):
        summarize([])


# --- the linear fit ----------------------------------------------------------------------------

def test_fit_recovers_an_exact_line():
    weights = [1e5, 1e6, 5e6, 1.2e7]
    line = fit_line(weights, [20e-6 + 0.25e-9 * w for w in weights])
    assert line.slope == pytest.approx(0.25e-9)
    assert line.intercept == pytest.approx(20e-6)
    assert line.r2 == pytest.approx(1.0)


def test_fit_of_scattered_points_worked_by_hand():
    # mean x 1.5, mean y 2.5, Sxy 4, Sxx 5: slope 0.8, intercept 1.3; SSres 1.8, SStot 5
    line = fit_line([0, 1, 2, 3], [1, 3, 2, 4])
    assert line.slope == pytest.approx(0.8)
    assert line.intercept == pytest.approx(1.3)
    assert line.r2 == pytest.approx(1 - 1.8 / 5)


def test_fit_keeps_the_sizes_it_measured():
    line = fit_line([4e6, 1e5, 2e6], [4e-3, 1e-4, 2e-3])
    assert (line.low, line.high) == (1e5, 4e6) and len(line.points) == 3
    assert line.as_dict()["measured_weights"] == [1e5, 4e6]
    assert distrust(line) == []


def test_a_poor_fit_is_distrusted():
    # the busy-machine sweep: R^2 0.75
    rng = np.random.default_rng(3)
    weights = np.linspace(1e5, 2e6, 8)
    times = 20e-6 + 0.2e-9 * weights
    line = fit_line(weights, times * (1 + 0.6 * rng.standard_normal(8)).clip(0.2))
    assert line.r2 < MIN_R2
    assert any(f"R^2 {line.r2:.3f} is under 0.99" in reason for reason in distrust(line))


def test_a_line_predicting_negative_times_is_distrusted():
    # a line bent by the cache: flat small nets, steep large ones
    weights = [1e5, 2e6, 4e6, 6e6, 8e6, 1e7]
    line = fit_line(weights, [5e-6, 16e-6, 27e-6, 43e-6, 100e-6, 190e-6])
    assert line.intercept < 0
    assert any("negative time" in reason and "100,000 weights" in reason
               for reason in distrust(line))


def test_a_machine_whose_speed_drifted_during_the_sweep_is_distrusted():
    # every size 30% slower in the last pass: still a straight line, but of no one moment
    points = [{"line": "float", "weights": w, "seconds": w * 1e-9,
               "pass_seconds": [w * 1e-9, w * 1e-9, w * 1.3e-9]} for w in (1e6, 2e6, 3e6, 4e6)]
    line = fit_lines(points)["float"]
    assert line.r2 == pytest.approx(1.0) and line.drift == pytest.approx(0.3)
    assert any("moved by 30% between the sweep's passes" in reason for reason in distrust(line))
    for point in points:
        point["pass_seconds"] = [point["seconds"] * 0.97, point["seconds"] * 1.02]
    assert distrust(fit_lines(points)["float"]) == []


def test_two_sizes_prove_nothing():
    line = fit_line([1e5, 2e6], [1e-5, 3e-4])
    assert line.r2 == 1.0 and "fitted to 2 sizes" in distrust(line)[0]


@pytest.mark.parametrize("xs, ys, problem", [([1], [2], "at least 2 points"),
                                              ([1, 1], [2, 3], "same x"),
                                              ([1, 2], [2], "2 x values but 1 y"),
                                              ([1, 2], [2, float("nan")], "finite")])
def test_fit_rejects_what_has_no_line(xs, ys, problem):
    with pytest.raises(ValueError, match=problem):
        fit_line(xs, ys)


# --- network shapes ----------------------------------------------------------------------------

def test_paper_networks_weight_counts():
    assert mlp_weights((784, 1000, 500, 2)) == 1_286_502 == budget.LITTLE_WEIGHTS
    assert mlp_weights((784, 2500, 2000, 1500, 1000, 500, 10)) == 11_972_510 == budget.BIG_WEIGHTS


def test_shape_text_round_trip_and_errors():
    assert parse_shape("784-1000-500-10") == (784, 1000, 500, 10)
    for bad in ("784", "784-x-10", "784-0-10", "784-1"):
        with pytest.raises(ValueError, match="shape"):
            parse_shape(bad)


def test_sweep_sizes_grow_towards_their_targets():
    assert sizes_for(mlp_weights((784, 1000, 1000, 10))) == (784, 1000, 1000, 10)
    shapes = sweep_shapes(100_000, 12_000_000, 8)
    counts = [mlp_weights(s) for s in shapes]
    assert len(shapes) == 8 and counts == sorted(counts)
    assert abs(counts[0] - 100_000) < 1000 and abs(counts[-1] - 12_000_000) < 7000
    with pytest.raises(ValueError, match="0 < min"):
        sweep_shapes(5, 5, 3)


# --- budget arithmetic -------------------------------------------------------------------------

def test_paper_link_leaves_10_ms_on_the_server():
    assert budget.remote_budget_ms(40, 15) == 10


def test_weights_within_a_budget_follow_the_line():
    assert budget.weights_within(40, PAPER_LINE) == pytest.approx(40e6)
    line = line_through(2e-9, 1e-3)                        # 1 ms per call + 2 ns per weight
    assert budget.weights_within(40, line) == pytest.approx((40 - 1) / 2e-6)
    assert budget.weights_within(0.5, line) == 0.0         # not even the fixed cost fits
    assert budget.whole(budget.weights_within(10, PAPER_LINE)) == 10_000_000


def test_big_little_break_even():
    # little 5 ms here; big 1 ms remote: the little net wins once the link exceeds 2 ms each way
    assert budget.break_even_link_ms(5, 1) == 2
    assert budget.little_answers_first(5, link_ms=15, big_ms=1)
    assert not budget.little_answers_first(5, link_ms=1, big_ms=1)
    assert budget.break_even_link_ms(1, 5) == 0            # a faster little net always wins
    assert budget.round_trip_ms(15, 1) == 31


def test_plan_with_the_paper_numbers():
    result = budget.plan(40, 15, {"float": PAPER_LINE})
    assert result["remote_ms"] == 10
    assert result["local"]["float"]["weights"] == pytest.approx(40e6)
    assert result["remote"]["float"]["weights"] == pytest.approx(10e6)
    assert result["local"]["float"]["outside"] == result["remote"]["float"]["outside"] == 1.0
    assert result["big"]["ms"] == pytest.approx(11.97251) and not result["big"]["given"]
    assert result["round_trip_ms"] == pytest.approx(41.97251)
    little = result["little"]["float"]
    assert little["ms"] == pytest.approx(1.286502) and little["little_first"]
    assert budget.plan(40, 15, {"float": PAPER_LINE}, big_ms=2.0)["round_trip_ms"] == 32.0
    text = budget.format_plan(result, {"float": PAPER_LINE})
    assert "40,000,000 weights" in text and "10,000,000 weights" in text
    assert "NOT MEASURED" not in text and budget.all_answered(result)


def test_plan_uses_the_servers_line_for_the_remote_side():
    server = {"float": line_through(0.1e-9, sizes=(1e6, 5e7, 2e8))}   # ten times faster
    result = budget.plan(40, 15, {"float": PAPER_LINE}, server)
    assert result["remote"]["float"]["weights"] == pytest.approx(100e6)
    assert result["big"]["ms"] == pytest.approx(1.197251)


def test_an_answer_past_the_sizes_measured_is_flagged_not_given():
    # the case: a quick sweep up to 2M weights, then a 10 ms budget for binary nets
    quick = {"binary/c": line_through(0.008e-9, 3e-6, sizes=(1e5, 5e5, 1e6, 2e6))}
    result = budget.plan(10, 0, quick)
    answer = result["local"]["binary/c"]
    assert answer["weights"] == pytest.approx(1.249625e9) and answer["outside"] > 600
    text = budget.format_plan(result, quick)
    assert "more than 2,000,000 weights (the largest measured" in text
    assert "624.8x past it: NOT MEASURED" in text
    assert "1,249,625,000 weights" not in text.replace("line's 1,249,625,000", "")
    from edgebnn.bench.sizing import largest_loadable
    loads = largest_loadable(budget.FAMILY, "binary/c")         # the default Limits' widest
    assert 5e8 < loads < 1.6e9
    assert (f"sweep --kind binary --backend c --min-weights 310000000 --max-weights {loads} "
            "--profile binary-c.json  (capped: wider nets do not load or with the default "
            "Limits)") in text
    assert "--profile server-binary-c.json" in text       # the remote side's, on the server
    assert "then: python -m edgebnn.bench budget ... --profile binary-c.json --remote-profile " \
           "server-binary-c.json" in text
    assert not budget.all_answered(result)
    advice = budget.unmeasured_advice(budget.plan(10, 0, quick, memory=200 << 20))
    room = largest_loadable(budget.FAMILY, "binary/c", 200 << 20)    # this kernel's layout
    assert 2e8 < room < loads
    assert f"--max-weights {room} --profile binary-c.json  (capped: wider nets do not load " \
           "in 200.0 MB, or with the default Limits)" in advice[1]


def test_a_budget_below_the_smallest_size_measured_is_flagged():
    line = line_through(1e-9, 1e-3)                      # 1 ms fixed, 1 ns per weight, from 1M
    result = budget.plan(1.5, 0, {"float": line})
    assert result["local"]["float"]["outside"] > 1
    assert "fewer than 1,000,000 weights" in budget.format_plan(result, {"float": line})


def test_refused_lines_give_no_answer_and_say_what_to_do():
    weights = [1e5, 5e5, 1e6, 1.5e6, 2e6]
    lines = {"float": line_through(0.2e-9, 20e-6, sizes=weights),
             # a sweep on a loaded machine: times that jump about
             "binary/c": fit_line(weights, [2e-4, 1e-5, 3e-4, 2e-5, 3.5e-4])}
    result = budget.plan(40, 15, lines, big_ms=2.0)
    assert result["local"]["binary/c"]["refused"] == distrust(lines["binary/c"])
    # where to measure again: around where the refused line points (its estimates, 10 and 40 ms)
    ranges = budget.ranges_to_measure(result)
    for side in ("local", "remote"):
        estimate = result[side]["binary/c"]["estimate"]
        low, high, _ = ranges[side, "binary/c"]
        assert low == pytest.approx(estimate / 4, rel=0.05)
        assert high == pytest.approx(estimate * 1.25, rel=0.05)
    assert "refused" in result["little"]["binary/c"] and not budget.all_answered(result)
    text = budget.format_plan(result, lines, words={"load": [3.2, 2.0, 1.0]})
    assert "binary/c is refused: R^2 " in text
    assert "on an idle machine (stop other jobs, load average now 3.2)" in text
    assert "no answer: the line is refused" in text


def test_shapes_asked_about_are_answered_fit_or_not():
    # 1 ns per weight measured from 1M to 60M weights; 10 ms remote, 40 ms here; 200 MB
    shapes = [(784, 1000, 500, 2),          # 1.3M weights: 1.3 ms, fits both sides
              (784, 3000, 3000, 2),         # 11.4M: 11.4 ms, over the 10 ms remote
              (784, 8000, 8000, 2),         # 70M: past the sizes measured, and over 200 MB
              (100, 100, 2)]                # 10k: below the sizes measured
    result = budget.plan(40, 15, {"float": PAPER_LINE}, shapes=shapes, memory=200 << 20,
                         remote_memory=200 << 20)
    local = [shape["local"]["float"] for shape in result["shapes"]]
    remote = [shape["remote"]["float"] for shape in result["shapes"]]
    assert [row["fits"] for row in local] == [True, True, False, None]
    assert [row["fits"] for row in remote] == [True, False, False, None]
    assert remote[1]["limit"] == "time" and local[2]["limit"] == "memory"
    assert local[3]["limit"] == "not measured" and not budget.all_answered(result)
    text = budget.format_plan(result, {"float": PAPER_LINE})
    assert "784-3000-3000-2 (11,364,002 weights):" in text
    assert "remote: does not fit (11.364 ms > 10 ms)" in text
    assert "here: does not fit (needs 780.5 MB to load, over the 200.0 MB available)" in text
    assert "here: unknown (0.010 ms by the line, but 97.07x outside the sizes measured" in text


def test_a_shape_over_the_loaders_limit_does_not_fit():
    line = line_through(1e-9, sizes=(1e6, 1e8, 2e8))
    row = budget.plan(1000, 0, {"float": line}, shapes=[(784, 12000, 12000, 10)])["shapes"][0]
    assert row["local"]["float"]["fits"] is False and row["local"]["float"]["limit"] == "file"
    # within the file limit but over the 2^25 float multiply-adds that Runtime loads by default
    row = budget.plan(1000, 0, {"float": line}, shapes=[(784, 6000, 6000, 10)])["shapes"][0]
    assert row["local"]["float"]["limit"] == "limits"
    assert "over the default Limits' 33,554,432" in row["local"]["float"]["why"]


@pytest.mark.parametrize("memory, high, stop", [(None, 6e7, "time"), (20 << 20, 6e7, "memory"),
                                                (None, 5e6, "not measured")])
def test_the_proposal_is_the_widest_shape_that_fits(memory, high, stop):
    from edgebnn.bench.sizing import family_shape, propose, verdict
    line = line_through(1e-9, sizes=(1e6, high / 2, high))
    proposal = propose((784, 2, 10), line, "float", 10, memory)
    width = proposal["sizes"][1]
    assert proposal["sizes"] == family_shape((784, 2, 10), width) and proposal["fits"]
    wider = verdict(family_shape((784, 2, 10), width + 1), line, "float", 10, memory)
    assert not wider["fits"] and wider["limit"] == proposal["stop"] == stop
    if stop == "time":                       # 1 ns a weight: 10 ms is 10M weights
        assert mlp_weights(proposal["sizes"]) <= 10e6 < mlp_weights(family_shape((784, 2, 10), width + 1))


def test_no_proposal_when_the_smallest_net_measured_is_too_slow():
    from edgebnn.bench.sizing import format_proposal, propose
    line = line_through(1e-9, sizes=(1e6, 2e6, 4e6))           # 1 ms at the smallest
    proposal = propose((784, 2, 10), line, "float", 0.5)
    assert proposal["sizes"] is None and proposal["narrowest"]["weights"] >= 1e6
    assert format_proposal(proposal, line).startswith("none: the narrowest measured, 784-")
    assert "refused" in propose((784, 2, 10), fit_line([1, 2], [1, 2]), "float", 10)


@pytest.mark.parametrize("ms, link, problem", [(-1, 0, "positive number of milliseconds"),
                                                (0, 0, "positive number of milliseconds"),
                                                (40, -1, "link delay must be 0 or more"),
                                                (40, 25, "larger than half")])
def test_bad_budgets_are_named(ms, link, problem):
    with pytest.raises(ValueError, match=problem):
        budget.remote_budget_ms(ms, link)


# --- profiles ----------------------------------------------------------------------------------

def test_profile_round_trips_and_refits_its_points(tmp_path):
    lines = {"float": line_through(0.245e-9, 87e-6), "binary/c": line_through(0.024e-9, 6e-6)}
    path = tmp_path / "board.json"
    save_profile(make_profile(lines, points_of(lines), command="test",
                              machine={"machine": "armv7l"}), path)
    profile, loaded = load_profile(path)
    assert loaded.keys() == lines.keys()
    for name, line in lines.items():
        assert loaded[name].slope == pytest.approx(line.slope)
        assert loaded[name].intercept == pytest.approx(line.intercept)
        assert loaded[name].points == line.points
    assert profile["machine"] == {"machine": "armv7l"}


def test_machine_info_names_what_timings_depend_on():
    info = machine_info()
    for key in ("machine", "processor", "python", "numpy", "popcount_path"):
        assert key in info
    json.dumps(info)


HEAD = '{"format": "edgebnn-bench-profile", "version": 1, '


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ('{"format": "something else"}', "not an edgebnn bench profile"),
    (HEAD.replace("1", "99") + '"points": []}', "version 99"),
    (HEAD + '"points": []}', "non-empty list"),
    (HEAD + '"points": [{"line": "float", "weights": 5}]}', "point 0 needs"),
    (HEAD + '"points": [{"line": "float", "weights": -5, "seconds": 1}]}', "point 0 needs"),
    (HEAD + '"points": [{"line": "float", "weights": 5, "seconds": 1, "pass_seconds": [1, "x"]}]}',
     "point 0 needs"),
    (HEAD + '"points": [{"line": "float", "weights": 5, "seconds": 1}]}',
     "line 'float': a line needs at least 2 points")])
def test_malformed_profiles_are_named(tmp_path, content, problem):
    path = tmp_path / "board.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem):
        load_profile(path)


def test_missing_profile_is_named(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_profile(tmp_path / "absent.json")


# --- the command line --------------------------------------------------------------------------

@pytest.fixture
def profile_file(tmp_path):
    path = tmp_path / "board.json"
    lines = {"float": PAPER_LINE, "binary/c": line_through(0.025e-9, sizes=(1e6, 1e9, 2e9))}
    save_profile(make_profile(lines, points_of(lines), command="test"), path)
    return str(path)


def test_budget_command_prints_the_paper_numbers(profile_file, capsys):
    code, out, _ = run_cli(["budget", "--ms", "40", "--link-ms", "15", "--profile", profile_file],
                           capsys)
    assert code == 0
    assert "40 ms - 2 x 15 ms link = 10 ms" in out
    assert "40,000,000 weights" in out and "10,000,000 weights" in out
    assert "1,600,000,000 weights" in out                    # binary: 40 ms / 0.025 ns
    assert "1,000,000 .. 60,000,000   0.0%  yes" in out     # where measured, drift, usable
    # a big net past the float line's sizes: said, and exit status 1
    code, out, _ = run_cli(["budget", "--ms", "40", "--link-ms", "15", "--profile",
                            profile_file, "--big-weights", "100000000"], capsys)
    assert code == 1 and "NOT MEASURED" in out


def test_budget_command_answers_shapes_against_the_memory(profile_file, capsys):
    code, out, _ = run_cli(["budget", "--ms", "40", "--link-ms", "15", "--profile", profile_file,
                            "--memory-mb", "100", "--shape", "784-1000-500-2", "784-2500-2000-2",
                            "--shape", "784-6000-6000-2"], capsys)
    assert code == 0, out
    assert "Memory here: 100.0 MB (--memory-mb); remote side: 100.0 MB (--memory-mb)" in out
    assert "784-1000-500-2 (1,286,502 weights):\n  float          here: fits (1.287 ms" in out
    assert "784-6000-6000-2 (40,728,002 weights):\n  float          here: does not fit (needs" in out
    assert "largest 784-h-h-10: 784-" in out and "a wider one needs more memory" in out


def test_budget_command_takes_the_memory_from_the_profile(tmp_path, capsys):
    lines = {"float": PAPER_LINE}
    path = tmp_path / "pi.json"
    save_profile(make_profile(lines, points_of(lines), command="test",
                              machine={"memory": {"total": 1 << 30, "available": 800 << 20},
                                       "caches": {"L1d": 32 << 10, "L2": 512 << 10}}), path)
    code, out, _ = run_cli(["budget", "--ms", "40", "--profile", str(path), "--depth", "3"], capsys)
    assert "Memory here: 800.0 MB (available on this board when it was profiled)" in out
    assert "Caches here: L2 512 KB." in out and "largest 784-h-h-h-10: 784-" in out
    save_profile(make_profile(lines, points_of(lines), command="test", machine={}), path)
    code, out, _ = run_cli(["budget", "--ms", "40", "--profile", str(path)], capsys)
    assert "Memory here: not checked (the profile does not say; give --memory-mb)" in out


def test_budget_reads_a_profile_per_kind(tmp_path, capsys):
    paths = []
    for name, line in (("float", PAPER_LINE), ("binary/c", line_through(0.025e-9, sizes=(1e6, 1e9, 2e9)))):
        paths.append(tmp_path / f"{name.replace('/', '-')}.json")
        save_profile(make_profile({name: line}, points_of({name: line}), command="test"), paths[-1])
    code, out, _ = run_cli(["budget", "--ms", "40", "--profile", str(paths[0]),
                            "--profile", str(paths[1])], capsys)
    assert "40,000,000 weights" in out and "1,600,000,000 weights" in out
    # a later profile's line replaces an earlier one's: 2 ns per weight gives 20M in 40 ms
    slower = {"float": line_through(2e-9)}
    save_profile(make_profile(slower, points_of(slower), command="test"), tmp_path / "slow.json")
    code, out, _ = run_cli(["budget", "--ms", "40", "--profile", str(paths[0]), "--profile",
                            str(paths[1]), "--profile", str(tmp_path / "slow.json")], capsys)
    assert "by time: 20,000,000 weights" in out and "40,000,000 weights" not in out


def test_budget_command_exits_1_on_a_refused_line(tmp_path, capsys):
    weights = [1e5, 5e5, 1e6, 1.5e6, 2e6]
    lines = {"float": fit_line(weights, [2e-4, 1e-5, 3e-4, 2e-5, 3.5e-4])}
    path = tmp_path / "noisy.json"
    save_profile(make_profile(lines, points_of(lines), command="test"), path)
    code, out, _ = run_cli(["budget", "--ms", "40", "--profile", str(path)], capsys)
    assert code == 1 and "float is refused" in out and "usable" in out


def test_budget_command_json(profile_file, capsys):
    code, out, _ = run_cli(["budget", "--ms", "40", "--link-ms", "15", "--profile", profile_file,
                            "--json"], capsys)
    assert code == 0 and json.loads(out)["remote_ms"] == 10


@pytest.mark.parametrize("args, problem", [
    (["budget", "--ms", "-40"], "--ms: -40 must be greater than 0"),
    (["budget", "--ms", "forty"], "'forty' is not a number"),
    (["budget", "--ms", "40", "--link-ms", "-1"], "--link-ms: -1 must be at least 0"),
    (["budget"], "--ms"),
    (["sweep", "--points", "0"], "--points: 0 must be greater than 0"),
    (["latency"], "either MODEL.h5 or --shape"),
    (["latency", "m.h5", "--backend", "gpu"], "invalid choice"),
    (["compare", "--shape", "784-x-10"], "expected layer sizes"),
    (["frobnicate"], "invalid choice")])
def test_bad_arguments_exit_2_with_a_message(args, problem, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert problem in err


def test_problems_found_later_exit_2_naming_them(tmp_path, profile_file, capsys):
    cases = [(["budget", "--ms", "40", "--link-ms", "25", "--profile", profile_file],
              "larger than half the 40 ms budget"),
             (["budget", "--ms", "40", "--profile", str(tmp_path / "none.json")], "no such file"),
             (["compare"], "either MODEL.h5 or --shape"),
             (["latency", str(tmp_path / "none.h5")], "none.h5")]
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    cases.append((["budget", "--ms", "40", "--profile", str(bad)], "not valid JSON"))
    for args, problem in cases:
        code, _, err = run_cli(args, capsys)
        assert code == 2, args
        assert problem in err, (args, err)


# --- latency -----------------------------------------------------------------------------------

@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "mlp.h5"
    save_model(random_mlp((12, 8, 3), input_shape=(3, 4), input_dtype="uint8", scale=1 / 255), path)
    return str(path)


def test_latency_reports_every_field(model_file, capsys):
    code, out, _ = run_cli(["latency", model_file, "--runs", "7", "--warmup", "2", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["inference_us"]["count"] == 7 and result["warmup_us"]["count"] == 2
    assert set(result["inference_us"]) >= {"min", "mean", "median", "p90", "p99", "std",
                                           "trimmed_mean", "outliers"}
    assert result["tracemalloc_peak_bytes"] > 0 and result["max_rss_bytes"] > 0
    assert result["input_shape"] == [3, 4] and "machine" in result


def test_latency_text_looks_like_benchmark_model(model_file, capsys):
    code, out, _ = run_cli(["latency", model_file, "--runs", "5", "--warmup", "0"], capsys)
    assert code == 0
    assert "count=5 first=" in out and " avg=" in out and " std=" in out and "trimmed_avg=" in out
    assert "Trimmed mean " in out and "Outliers: " in out
    assert "Inference timings in us: Init: " in out and "First inference: " in out


def test_latency_reads_samples_from_npy_and_npz(model_file, tmp_path, capsys):
    samples = np.random.default_rng(0).integers(0, 256, (4, 3, 4), dtype=np.uint8)
    np.save(tmp_path / "x.npy", samples)
    np.savez(tmp_path / "x.npz", other=np.zeros(1), x=samples)
    for name in ("x.npy", "x.npz"):
        code, out, _ = run_cli(["latency", model_file, "--runs", "3", "--json",
                                "--input", str(tmp_path / name)], capsys)
        assert code == 0 and json.loads(out)["samples"] == 4


def test_the_command_runs_blas_on_one_thread(tmp_path):
    # edgebnn loads NumPy (and its OpenBLAS) before the harness runs: the pool is told directly
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-m", "edgebnn.bench", "latency", "--shape", "20-16-3",
                           "--runs", "2", "--warmup", "0", "--json"], capture_output=True,
                          text=True, env=env, timeout=120)
    machine = json.loads(done.stdout)["machine"]
    from edgebnn.bench.timing import blas_threads
    if blas_threads() is not None:                 # NumPy's BLAS here is an OpenBLAS
        assert machine["blas_threads"] == 1


def test_latency_of_a_random_net_of_a_shape(capsys):
    for kind in ("float", "binary"):
        code, out, _ = run_cli(["latency", "--shape", "20-16-3", "--kind", kind, "--runs", "3",
                                "--warmup", "0", "--json"], capsys)
        assert code == 0 and json.loads(out)["model"] == f"random {kind} 20-16-3"
    code, _, err = run_cli(["latency", "m.h5", "--shape", "20-16-3"], capsys)
    assert code == 2 and "either MODEL.h5 or --shape" in err


def test_latency_rejects_samples_of_the_wrong_shape(model_file, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((4, 5), np.uint8))
    code, _, err = run_cli(["latency", model_file, "--input", str(tmp_path / "x.npy")], capsys)
    assert code == 2 and "takes one sample of shape (3, 4)" in err


def test_latency_of_a_shipped_model_by_name_on_an_image(tmp_path, capsys):
    from edgebnn.images import read_image
    digits = np.load(models.path("mnist-samples.npz"))["images"]
    (tmp_path / "digit.pgm").write_bytes(b"P5 28 28 255\n" + digits[0].tobytes())
    code, out, _ = run_cli(["latency", "mnist-bnn.h5", "--runs", "3", "--warmup", "0", "--json",
                            "--input", str(tmp_path / "digit.pgm")], capsys)
    assert code == 0 and json.loads(out)["samples"] == 1
    assert np.array_equal(read_image(str(tmp_path / "digit.pgm")), digits[0])


# --- sweep and compare, tiny and untimed -------------------------------------------------------

def test_sweep_of_tiny_nets_fits_a_line_per_kind(backend, tmp_path):
    from edgebnn.bench import sweep
    result = sweep.run_sweep([(8, 4, 4, 2), (8, 16, 16, 2), (8, 32, 32, 2)],
                             ["float", f"binary/{backend}"], rounds=2,
                             passes=2, progress=False)
    assert set(result["lines"]) == {"float", f"binary/{backend}"}
    assert len(result["points"]) == 6 and all(p["rounds"] == 4 for p in result["points"])
    assert all(len(p["pass_seconds"]) == 2 for p in result["points"])
    sweep.write_csv(result["points"], tmp_path / "sweep.csv")
    assert len((tmp_path / "sweep.csv").read_text().splitlines()) == 7


def test_sweep_of_one_kind_times_only_its_lines(backend):
    from edgebnn.bench import sweep
    assert sweep.line_names("float") == ["float"]
    assert sweep.line_names("binary", backend) == [f"binary/{backend}"]
    result = sweep.run_sweep([(13, 7, 3), (13, 21, 3), (13, 37, 3)], [f"binary/{backend}"],
                             rounds=2, passes=1, progress=False)     # 13 and 21: padding bits
    assert set(result["lines"]) == {f"binary/{backend}"}


def test_sweep_plot_is_written_when_matplotlib_is_there(tmp_path):
    pytest.importorskip("matplotlib")
    from edgebnn.bench import sweep
    points = [{"line": "float", "weights": w, "seconds": 1e-5 + w * 1e-10} for w in (10, 20, 30)]
    assert sweep.plot(points, sweep.fit_lines(points), tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_rebuilds_only_float_dense_chains():
    from edgebnn.bench import compare
    from edgebnn.bench.binary import binary_mlp
    assert compare.dense_chain(binary_mlp(np.random.default_rng(0), (8, 16, 4))) is None
    model = random_mlp((6, 5, 3))
    assert [w.shape for w, _, _ in compare.dense_chain(model)] == [(5, 6), (3, 5)]


def test_compare_takes_its_sample_from_a_file(capsys):
    code, out, _ = run_cli(["compare", "mnist-mlp.h5", "--input", models.path("mnist-samples.npz"),
                            "--backend", "c", "--rounds", "2", "--json"], capsys)
    result = json.loads(out)[0]
    assert code == 0 and result["input"].endswith("mnist-samples.npz")
    assert {"edgebnn/c", "edgebnn int8/c"} <= set(result["seconds"])


def test_compare_runs_an_onnx_cnn_on_onnxruntime_as_it_is(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    weights = [numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "b"),
               numpy_helper.from_array(rng.standard_normal((32, 3)).astype(np.float32), "g"),
               numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "c")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]), helper.make_node("Gemm", ["f", "g", "c"], ["y"])]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           [1, 1, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "cnn.onnx"))
    code, out, _ = run_cli(["compare", str(tmp_path / "cnn.onnx"), "--backend", "c",
                            "--rounds", "2", "--json"], capsys)
    assert code == 0 and "onnxruntime" in json.loads(out)[0]["seconds"]


def test_compare_times_a_float_chain_with_int8_weights_too():
    from edgebnn.bench import compare
    sample = np.ones(6, np.float32)
    runs, _ = compare.candidates(random_mlp((6, 5, 3)), sample, ["numpy"])
    assert {"edgebnn/numpy", "edgebnn int8/numpy"} <= set(runs)
    assert runs["edgebnn int8/numpy"]().logits.shape == (3,)


@pytest.mark.parametrize("framework", ["onnxruntime", "torch"])
def test_other_frameworks_compute_what_this_runtime_does(framework):
    pytest.importorskip(framework)
    from edgebnn.bench import compare
    model = random_mlp((12, 8, 3), input_shape=(3, 4), input_dtype="uint8", scale=1 / 255,
                       offset=-0.5)
    build = compare.onnx_session if framework == "onnxruntime" else compare.torch_module
    x = np.random.default_rng(1).integers(0, 256, (3, 4), dtype=np.uint8)
    assert_same_sums(build(model, compare.dense_chain(model))(x), Runtime(model).classify(x).logits)


def test_report_budget_section_says_what_was_not_measured():
    from edgebnn.bench import report
    weights = [1e5, 5e5, 1e6, 1.5e6, 2e6]
    lines = {"float": line_through(0.2e-9, 20e-6, sizes=weights),
             "binary/c": fit_line(weights, [2e-4, 1e-5, 3e-4, 2e-5, 3.5e-4])}
    text = report.budget_section(budget.plan(40, 15, lines), lines, {"profile": "reports/profile.json"})
    assert "| float | > 2,000,000 (line: 199,900,000, not measured) |" in text
    assert "| binary/c | refused (see below) | refused (see below) | refused |" in text
    assert "binary/c is refused: R^2" in text


# --- memory ------------------------------------------------------------------------------------

def int8_mlp(rng, sizes):
    from edgebnn.bench.binary import float_mlp
    from edgebnn.converters.common import with_int8_weights
    return with_int8_weights(float_mlp(rng, sizes))


@pytest.mark.parametrize("sizes", [(784, 1024, 1024, 10), (100, 3000, 77, 5)])
@pytest.mark.parametrize("kind", ["float", "binary"])
def test_memory_counts_match_what_a_load_allocates(kind, sizes, backend, tmp_path):
    from edgebnn.bench.binary import binary_mlp, float_mlp
    assert_counted(float_mlp if kind == "float" else binary_mlp, sizes,
                   "float" if kind == "float" else f"binary/{backend}", tmp_path)


@pytest.mark.parametrize("sizes", [(784, 1024, 1024, 10), (100, 3000, 77, 5)])
def test_memory_count_of_int8_weights_matches_what_a_load_allocates(sizes, tmp_path):
    from edgebnn.kernels import c_available
    if not c_available():
        pytest.skip("the int8 line is the C kernel's, not built here")
    # NumPy 1.21 holds more of its own after an int8 load than NumPy 2 does (measured over
    # the count: 77.5 KB resident and 153.6 KB at the peak, against 43.2 and 53.5 KB)
    assert_counted(int8_mlp, sizes, "int8", tmp_path, slack=160_000)


def assert_counted(make, sizes, line, tmp_path, slack=64_000):
    """``needs(sizes, line)`` against what loading such a net allocates (tracemalloc), within
    ``slack`` bytes (Python's own objects, 20-50 KB a model)."""
    import tracemalloc
    from edgebnn.bench.memory import needs
    path = tmp_path / "net.h5"
    save_model(make(np.random.default_rng(0), sizes), path)
    tracemalloc.start()
    try:
        rt = Runtime(path, backend=line.partition("/")[2] or None)
        resident, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    counted = needs(sizes, line)
    assert abs(resident - counted["resident"]) <= slack
    assert abs(peak - counted["peak"]) <= slack
    arrays = sum(dataset.nbytes for layer in rt.model.layers for dataset in layer.fields()[1].values())
    assert counted["file"] == arrays


def test_memory_per_weight_of_each_backend():
    from edgebnn.bench.memory import needs
    sizes = (784, 4096, 4096, 10)
    weights = mlp_weights(sizes)
    per_weight = {line: needs(sizes, line)["resident"] / weights
                  for line in ("float", "binary/c", "binary/numpy")}
    assert per_weight["float"] == pytest.approx(4, rel=0.01)
    from edgebnn.bench.memory import lanes_bytes
    regrouped = lanes_bytes(8, 8) > 0                    # the C kernel on a CPU with AVX-512
    copies = 3 if regrouped else 2                                   # packed, padded[, lanes]
    assert per_weight["binary/c"] == pytest.approx(copies / 8, rel=0.02)
    assert per_weight["binary/numpy"] == pytest.approx(4 + 1 / 8, rel=0.02)  # int32 + packed
    with pytest.raises(ValueError, match="binary/gpu"):
        needs(sizes, "binary/gpu")


def test_machine_memory_and_caches_are_read_from_linux_files(tmp_path):
    from edgebnn.bench.memory import caches, meminfo
    (tmp_path / "meminfo").write_text("MemTotal:        1020000 kB\nMemFree: 5 kB\n"
                                      "MemAvailable:     800000 kB\n")
    assert meminfo(tmp_path / "meminfo") == {"total": 1020000 * 1024, "available": 800000 * 1024}
    assert meminfo(tmp_path / "absent") == {}
    for index, (level, kind, size) in enumerate([(1, "Data", "32K"), (1, "Instruction", "32K"),
                                                 (2, "Unified", "512K")]):
        folder = tmp_path / "cache" / f"index{index}"
        folder.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(f"{value}\n")
    assert caches(tmp_path / "cache") == {"L1d": 32 << 10, "L2": 512 << 10}
    assert caches(tmp_path / "absent") == {}


def test_report_times_the_proposals_directly(tmp_path):
    from edgebnn.bench import report
    lines = {"float": line_through(1e-9, sizes=(8e3, 2e4, 4e4)),
             "binary/numpy": line_through(4e-9, sizes=(8e3, 2e4, 4e4))}
    result = budget.plan(40, 15, lines)
    ranges = budget.ranges_to_measure(result)
    from edgebnn.bench.sizing import largest_loadable
    loads = largest_loadable(budget.FAMILY, "float")    # 2^25 multiply-adds: 33.5M weights
    assert 3.3e7 < loads < 3.36e7
    assert ranges["local", "float"] == (10_000_000, loads, True)              # 40 ms: 40M
    assert ranges["remote", "float"] == (2_500_000, 12_000_000, False)        # 10 ms: 10M
    rows = report.time_proposals(result, seconds=0.05)
    assert [(side, name) for side, name, *_ in rows] == [
        ("local", "float"), ("local", "binary/numpy"), ("remote", "float"), ("remote", "binary/numpy")]
    for _, name, sizes, predicted, median, trimmed, outliers in rows:
        slope = lines[name].slope * 1e3
        assert mlp_weights(sizes) <= 4e4 and predicted == pytest.approx(mlp_weights(sizes) * slope)
        assert median > 0 and trimmed > 0
    text = report.proposals_section(result, lines, lines, ["python -m edgebnn.bench sweep ..."],
                                    ["--profile reports/float.json"], rows, [1.0, 1.0, 1.0])
    assert "--profile reports/float.json" in text
    assert "| here | float | 784-" in text and "| remote | binary/numpy | 784-" in text
    empty = report.proposals_section(result, lines, lines, [], [], [], [1.0, 1.0, 1.0])
    assert "No shape was proposed" in empty and "| side |" not in empty


def test_the_shipped_models_are_compared_in_one_run(capsys):
    from edgebnn.kernels import c_available
    if not c_available():
        pytest.skip("the C kernel is not built")
    from edgebnn.bench import shipped
    shipped.main(rounds=1)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["mnist-bnn.h5", "mnist-mlp.h5", "mnist-mlp.h5"]
    assert lines[2].endswith("1.00x mnist-mlp.h5") and "--weights int8" in lines[3]
