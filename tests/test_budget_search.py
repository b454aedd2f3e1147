"""``budget`` without a profile: the search over timed candidates, on made-up times and for real."""
import json
import math
import time

import pytest

from conftest import Process, bench_cli as run_cli, random_mlp
from edgebnn import save_model
from edgebnn.bench import search
from edgebnn.bench.shapes import mlp_weights
from edgebnn.bench.sizing import family_shape

FAMILY = (784, 2, 10)
BUDGET = 2e-3


def steady(seconds_of_width):
    """``measure(width, rounds)`` that always takes ``seconds_of_width(width)``; the widths
    it was asked for, in order, in its ``asked`` list."""
    def measure(width, rounds):
        measure.asked.append(width)
        return [seconds_of_width(width)] * rounds
    measure.asked = []
    return measure


def per_weight(width):
    return 1e-5 + 1e-9 * mlp_weights(family_shape(FAMILY, width))


def widest_within(seconds_of_width, budget):
    return search.widest_width(lambda w: seconds_of_width(w) <= budget)


def test_the_median_interval_is_the_binomial_order_statistics():
    assert search.median_interval(list(range(1, 12))) == (3, 9)
    assert search.median_interval([5.0]) == (5.0, 5.0)


def test_judge_decides_when_the_interval_is_clear_and_says_so_when_it_is_not():
    far = math.inf
    assert search.judge(lambda rounds: [1e-3] * rounds, BUDGET, far)[0] is True
    assert search.judge(lambda rounds: [3e-3] * rounds, BUDGET, far)[0] is False
    fits, samples = search.judge(lambda rounds: [0.9 * BUDGET, 1.1 * BUDGET] * (rounds // 2)
                                 + [BUDGET], BUDGET, far)
    assert fits is None and len(samples) == search.MAX_PASSES * search.ROUNDS


def test_the_search_brackets_the_widest_net_that_fits_within_its_resolution():
    measure = steady(per_weight)
    best, bound, tried = search.search(measure, BUDGET, FAMILY, 100_000, 256, math.inf)
    truth = widest_within(per_weight, BUDGET)
    assert bound == "resolution"
    assert truth / (1 + search.RESOLUTION) <= best["width"] <= truth
    assert best["seconds"] <= BUDGET and best["fits"]
    over = min(row["width"] for row in tried if not row["fits"])
    assert over <= (1 + search.RESOLUTION) * best["width"] + 1
    assert measure.asked.count(best["width"]) == 2 * search.MIN_PASSES  # judged, then again
    assert len(tried) < 20


def test_a_drift_found_by_the_second_timing_reopens_the_bracket_below():
    slowed = {"factor": 1.0, "seen": set()}

    def measure(width, rounds):
        if width in slowed["seen"] and rounds:          # the answer timed again: slower now
            slowed["factor"] = 1.3
        slowed["seen"].add(width)
        return [per_weight(width) * slowed["factor"]] * rounds
    best, bound, _ = search.search(measure, BUDGET, FAMILY, 100_000, 256, math.inf)
    assert bound == "resolution"
    assert per_weight(best["width"]) * 1.3 <= BUDGET
    assert best["width"] <= widest_within(lambda w: 1.3 * per_weight(w), BUDGET)


def test_the_search_stops_at_what_loads_at_width_one_and_at_its_deadline():
    best, bound, tried = search.search(steady(per_weight), BUDGET, FAMILY, 40, 256, math.inf)
    assert (best["width"], bound) == (40, "loads")
    best, bound, tried = search.search(steady(per_weight), 1e-6, FAMILY, 100_000, 256, math.inf)
    assert best is None and bound == "narrowest" and tried[-1]["width"] == 1
    best, bound, tried = search.search(steady(per_weight), BUDGET, FAMILY, 100_000, 256,
                                       time.monotonic() - 1)
    assert bound == "time" and len(tried) == 1 and best["width"] == 256


def test_an_answer_names_its_net_its_own_time_and_the_next_one_tried():
    answer = search.largest("float", FAMILY, BUDGET * 1e3, None, 60, 256, steady(per_weight))
    assert answer["bound"] == "resolution"
    assert answer["sizes"] == list(family_shape(FAMILY, answer["sizes"][1]))
    assert answer["measured_ms"] <= BUDGET * 1e3 and answer["interval_ms"][1] <= BUDGET * 1e3
    assert answer["next"]["measured_ms"] > BUDGET * 1e3
    assert answer["next"]["weights"] > answer["weights"]
    small = search.largest("float", FAMILY, BUDGET * 1e3, 1 << 20, 60, 256, steady(per_weight))
    assert small["bound"] == "memory" and small["weights"] * 4 < 1 << 20


def assert_honest(answer, ms):
    """An answer is a net whose own interval fits ``ms``, a measured "nothing fits", or
    (cut short by --max-seconds) no answer; every candidate's verdict is its interval's."""
    for row in answer["candidates"]:
        low, high = row["interval_ms"]
        if row["fits"] is not None:                 # None: too close to call
            assert row["fits"] == (high <= ms) and row["fits"] != (low > ms)
    if answer["sizes"] is not None:
        assert answer["sizes"][0] == 784 and answer["sizes"][-1] == 10
        assert answer["interval_ms"][1] <= ms
    elif answer["bound"] == "narrowest":         # an emulated board: even width 1 is too slow
        assert answer["next"]["sizes"][1] == 1 and answer["next"]["interval_ms"][0] > ms
    else:
        assert answer["bound"] == "time"


def test_budget_times_candidates_here_and_answers(capsys):
    code, out, _ = run_cli(["budget", "--ms", "1", "--link-ms", "0.25", "--quiet", "--json",
                            "--max-seconds", "30"], capsys)
    result = json.loads(out)
    assert result["method"] == "measured"
    for side, ms in (("local", 1.0), ("remote", 0.5)):
        for answer in result[side].values():
            assert_honest(answer, ms)
    cut_short = any(answer["sizes"] is None and answer["bound"] == "time"
                    for side in ("local", "remote") for answer in result[side].values())
    assert code == (1 if cut_short else 0)
    assert set(result["little"]) == set(result["local"])
    assert "standing in" in result["big"]["source"] and result["big"]["ms"] > 0


def test_budget_text_leads_with_the_answer_and_the_command_to_redo_it(capsys):
    code, out, _ = run_cli(["budget", "--ms", "0.5", "--quiet", "--backend", "numpy",
                            "--remote-ms", "3", "--shape", "784-16-16-10", "--max-seconds", "20"],
                           capsys)
    first = out.splitlines()[0]
    assert code == 0 and first.startswith("Within 0.5 ms on this machine")
    assert "784-16-16-10 (13,002 weights):" in out and "3.000 ms (given)" in out
    assert "Redo: python -m edgebnn.bench budget --ms 0.5 --quiet" in out


def test_budget_times_the_big_net_on_a_live_server(tmp_path, capsys):
    save_model(random_mlp([784, 32, 10], seed=3), tmp_path / "big.h5")
    server = Process(["-m", "edgebnn.net.serve", str(tmp_path / "big.h5"), "--port", "0",
                      "--log-level", "WARNING"])
    try:
        code, out, _ = run_cli(["budget", "--ms", "0.5", "--quiet", "--json", "--backend", "numpy",
                                "--remote-url", server.url, "--remote-model", "big",
                                "--max-seconds", "10"], capsys)
    finally:
        assert server.stop() == 0
    big = json.loads(out)["big"]
    assert code in (0, 1) and big["source"] == f"big at {server.url}, timed from here"
    assert 0 < big["interval_ms"][0] <= big["ms"] <= big["interval_ms"][1]


@pytest.mark.parametrize("args, message", [
    (["--remote-url", "http://127.0.0.1:1"], "--remote-url and --remote-model go together"),
    (["--remote-profile", "x.json"], "--remote-profile goes with --profile"),
])
def test_budget_refuses_options_that_do_not_go_together(args, message, capsys):
    code, _, err = run_cli(["budget", "--ms", "1", "--quiet", *args], capsys)
    assert code == 2 and message in err
