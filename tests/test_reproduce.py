"""The reproduction plan (examples/reproduce.py): names, outputs and the digest list it checks."""
import json

import numpy as np
import pytest

import reproduce  # noqa: E402  (examples/ is on the path: see conftest.py)


def test_plan_names_are_unique_and_are_the_files_the_scripts_write():
    pytest.importorskip("torch")
    import biglittle_train
    jobs = reproduce.plan()
    assert len({j.name for j in jobs}) == len(jobs)
    for job in jobs:
        if job.script != "biglittle_train.py":
            continue
        args = dict(zip(job.args[::2], job.args[1::2]))
        digit = int(args["--digit"]) if "--digit" in args else None
        assert job.name == biglittle_train.model_name(args["--kind"], digit, args.get("--tag"),
                                                      int(args["--seed"]))


def test_plan_ships_the_small_models_and_rebuilds_the_rest():
    jobs = {j.name: j for j in reproduce.plan()}
    for seed in ("", "-s1", "-s2"):
        for digit in (1, 8):
            assert jobs[f"little-binary-{digit}{seed}"].shipped
            assert jobs[f"little-float-{digit}{seed}"].shipped == (seed == "")
            assert not jobs[f"little-float-{digit}-shift2{seed}"].shipped
        assert jobs[f"max-concat{seed}"].shipped and jobs[f"max-concat-paper{seed}"].shipped
        assert jobs[f"max-concat{seed}"].args[-1] == jobs[f"max-concat-paper{seed}"].args[-1] == \
            str(reproduce.EPOCHS["ddnn"])        # the like-for-like row trains as long
        assert not jobs[f"big{seed}"].shipped
    pairings = [j for j in jobs.values() if j.folder == "pairings"]
    assert len(pairings) == 24 and all(j.shipped and "--drop" in j.args for j in pairings)
    assert all(j.args[j.args.index("--drop") + 1] == "0.0" for j in pairings)
    # the comparison's ninth pairing is the like-for-like run: not trained twice, as long as the rest
    assert not any(j.name.startswith("max-concat-nodrop") for j in jobs.values())
    assert {j.args[-1] for j in pairings} == {str(reproduce.EPOCHS["ddnn"])}


def test_commands_write_shipped_models_into_the_repository(tmp_path):
    job = next(j for j in reproduce.plan() if j.name == "little-binary-8-s2")
    argv = job.argv("/data", str(tmp_path))
    assert argv[argv.index("--out-dir") + 1] == "models/biglittle"
    checked = job.argv("/data", str(tmp_path), check=True)
    assert checked[checked.index("--out-dir") + 1] == str(tmp_path / "biglittle")


def test_a_file_is_trained_again_when_its_record_is_of_another_recipe(tmp_path):
    job = next(j for j in reproduce.plan() if j.name == "max-concat-s2")
    model = tmp_path / "max-concat-s2.h5"
    assert not reproduce.up_to_date(job, str(model))
    model.write_bytes(b"trained")
    record = tmp_path / "max-concat-s2.json"
    assert not reproduce.up_to_date(job, str(model))                    # no record
    record.write_text(json.dumps({"command": " ".join(job.argv("/data", str(tmp_path))[1:])}))
    assert reproduce.up_to_date(job, str(model))
    shorter = [a if a != str(reproduce.EPOCHS["ddnn"]) else "3" for a in job.args]
    record.write_text(json.dumps({"command": "ddnn_train.py " + " ".join(shorter)}))
    assert not reproduce.up_to_date(job, str(model))
    record.write_text("{")
    assert not reproduce.up_to_date(job, str(model))


def test_digests_are_read_from_a_report_table():
    digest = "ab" * 32
    text = (f"| `models/biglittle/little-binary-1.h5` | shipped | 784-1000-500-2 | 1 | 2 | {digest} |\n"
            f"| `/elsewhere/big-s2.h5` | rebuilt | {'cd' * 32} |\n| `x.h5` | no digest |\n")
    assert reproduce.listed_digests(text) == {"little-binary-1.h5": digest, "big-s2.h5": "cd" * 32}


class Fake:
    """Answers of 1,000 samples for the selection rules: the right-answer count and the
    local-exit share at T, given as functions."""
    def __init__(self, correct, share=lambda t: t):
        self.labels = [0] * 1000
        self.correct, self.share = correct, share

    def at(self, t):
        return self.share(t), self.correct(t) / 1000, 0.0


def test_selection_rules_choose_from_counts():
    import ddnn_eval

    everyone = Fake(lambda t: 970 - int(30 * t))        # 1 point lost at T = 0.34 to 0.36
    fine = Fake(lambda t: 960)
    weak = Fake(lambda t: 960 if t <= 0.2 else 955)     # over 95%, not by a standard error
    assert 955 < 1000 * ddnn_eval.missing_bar(1000) < 960
    chosen = ddnn_eval.choose_thresholds(everyone, [fine, weak])
    assert chosen["within-1"] == 0.36
    assert chosen["robust"] == 0.2
    assert chosen["paper-share"] == 0.61
    assert ddnn_eval.deployed_threshold(chosen) == 0.2
    assert ddnn_eval.choose_thresholds(everyone, [Fake(lambda t: 900)])["robust"] is None
    assert ddnn_eval.deployed_threshold({"goal": None, "robust": None, "within-1": 0.3}) == 0.3


def test_goal_rule_takes_the_widest_margin_over_every_condition():
    import ddnn_eval

    everyone = Fake(lambda t: 970)
    # the share's margin over 60% grows with T, the missing device's over 95% shrinks:
    # the widest margin of the narrower one is where they cross
    falling = Fake(lambda t: 990 - round(50 * t))
    chosen = ddnn_eval.choose_thresholds(everyone, [falling])
    margins = {t: ddnn_eval.goal_margin(everyone, [falling], t) for t in ddnn_eval.GRID}
    assert chosen["goal"] == 0.62 == max(margins, key=margins.get)
    assert ddnn_eval.meets_goal(everyone, [falling], 0.62)
    assert not ddnn_eval.meets_goal(everyone, [falling], 0.59)       # under 60% local exits
    assert not ddnn_eval.meets_goal(everyone, [falling], 0.9)        # 945 with the device missing
    assert ddnn_eval.deployed_threshold(chosen) == 0.62
    # no T meets every condition: the goal rule finds none, the file falls back
    chosen = ddnn_eval.choose_thresholds(everyone, [Fake(lambda t: 940)])
    assert chosen["goal"] is None and ddnn_eval.deployed_rule(chosen) == "within-1"


def test_held_out_checks_a_rule_on_the_half_it_did_not_choose_on():
    import types

    import ddnn_eval

    ddnn = types.SimpleNamespace(classes=range(10), devices=[types.SimpleNamespace(feature_bytes=1)])

    def answers(right):
        """Answers right where ``right`` says, at both exits; entropies spread over [0, 1)."""
        a = ddnn_eval.Answers.__new__(ddnn_eval.Answers)
        a.ddnn, a.present, a.outputs = ddnn, [True], [None] * len(right)
        a.labels = np.zeros(len(right), int)
        a.entropy = np.linspace(0, 1, len(right), endpoint=False)
        a.local = a.__dict__["cloud"] = np.where(right, 0, 1)
        return a

    n, rng = 2000, np.random.default_rng(1)
    everyone = answers(np.ones(n, bool))
    for rule in ("robust", "goal"):
        assert ddnn_eval.held_out(everyone, [everyone] * 2, rule, splits=20) == (20, 20)
        weak = answers(rng.random(n) < 0.9)
        assert ddnn_eval.held_out(everyone, [everyone, weak], rule, splits=20) == (0, 0)
    # 95.2% right at every T: a half over the robust bar (95.69% on 1,000) leaves the other under 95%
    near = answers(rng.permutation(n) < 0.952 * n)
    found, held = ddnn_eval.held_out(everyone, [near], "robust", splits=50)
    assert 0 < found < 50 and held == 0
    # the goal rule takes T where local exits pass 60% by as many standard errors as the
    # device passes 95%; the other half then has under 60% local exits about half the time
    found, held = ddnn_eval.held_out(everyone, [near], "goal", splits=50)
    assert found > 0 and 0 < held < found


def test_check_rebuilds_a_file_with_the_digest_its_report_lists(mnist_dir, tmp_path, monkeypatch):
    """A net trained here, rebuilt by its command in a fresh process: the same bytes."""
    pytest.importorskip("torch")
    import biglittle_train
    job = reproduce.Job("little-float-3", "biglittle", "biglittle_train.py",
                        ("--kind", "little-float", "--digit", "3", "--hidden", "8,8", "--epochs", "1",
                         "--limit", "200", "--dropout", "0,0.5"), False)
    monkeypatch.setattr(reproduce, "plan", lambda: [job])
    here = tmp_path / "here"
    assert biglittle_train.main(["--data", mnist_dir, "--out-dir", str(here), *job.args]) == 0
    report = tmp_path / "biglittle.md"
    report.write_text(f"| `{here}/little-float-3.h5` | {reproduce.sha256(here / 'little-float-3.h5')} |\n")
    check = ["check", "--data", mnist_dir, "--root", str(tmp_path / "again"), "--report", str(report)]
    assert reproduce.main(check) == 0
    report.write_text(f"| `little-float-3.h5` | {'0' * 64} |\n")
    assert reproduce.main(check) == 1        # the file is there: compared again, not retrained


def test_stopping_the_queue_stops_its_running_children_and_names_their_logs(tmp_path,
                                                                            monkeypatch, capsys):
    import sys
    import threading
    import time
    job = reproduce.Job("sleeper", "ddnn", "unused.py", (), False)
    monkeypatch.setattr(reproduce.Job, "argv",
                        lambda self, *_: [sys.executable, "-c", "import time; time.sleep(60)"])
    queue = reproduce.Queue([job, job._replace(name="never")], "data", str(tmp_path), False,
                            str(tmp_path / "logs"))
    worker = threading.Thread(target=queue.run_all, args=(1,))
    worker.start()
    until = time.monotonic() + 30
    while not queue.children and worker.is_alive() and time.monotonic() < until:
        time.sleep(0.05)
    queue.stop()
    worker.join(timeout=30)
    assert not worker.is_alive() and queue.failed == ["sleeper"]
    out = capsys.readouterr().out
    assert f"its epochs go to {tmp_path / 'logs' / 'sleeper.log'}" in out and "never" not in out
