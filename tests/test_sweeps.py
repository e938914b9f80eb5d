"""sweeps.py and its flags: --grid (every point, each task's best on the dev set, the report,
the submission of the selected points), --expect/--expect-file (exit 3 when missed), --smoke."""

import json
import re
import shutil
from pathlib import Path

import pytest

from fixtures import PRECISIONS
from glue_runner import leaderboard, submission, sweeps
from glue_runner.cli import build_parser
from glue_runner.run import Outcome
from glue_runner.session import configs_from_args
from glue_runner.tasks import get_task

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--max-train-samples", "16"]
# STS-B's correlations tell the points apart; RTE ties (the tiny model predicts one class), the first point wins
GRID = ["--task", "rte,stsb", "--grid", "learning_rate=1e-3,3e-3", *FAST]


def configs(*argv):
    args = build_parser().parse_args(["--model", "m", *argv])
    return configs_from_args(args, sweeps.parse_grid(args) if args.grid else None)


def runs_on_disk() -> dict[str, dict]:
    """Run folder (relative to results/) -> its metrics.json."""
    return {str(p.parent.relative_to("results")): json.loads(p.read_text())
            for p in Path("results/runs").rglob("metrics.json")}


def only_report() -> dict:
    reports = sorted(Path("results/grids").glob("*.json"))
    assert len(reports) == 1 and reports[0].with_suffix(".md").is_file()
    return json.loads(reports[0].read_text())


# ---- the grid: parsing -------------------------------------------------------

def test_a_grid_is_every_combination_for_every_task_and_seed_with_values_converted_as_flags():
    cfgs = configs("--task", "rte,wnli", "--seeds", "1,2", "--grid", "learning-rate=1e-3,3e-3", "batch_size=8,16",
                   "--grid", "num_train_epochs=2")
    assert len(cfgs) == 2 * 2 * 4
    assert [(c.learning_rate, c.batch_size, c.num_train_epochs) for c in cfgs[:4]] == [
        (1e-3, 8, 2.0), (1e-3, 16, 2.0), (3e-3, 8, 2.0), (3e-3, 16, 2.0)]
    assert {type(c.batch_size) for c in cfgs} == {int} and len({json.dumps(c.identity()) for c in cfgs}) == 16


def test_with_a_grid_ax_comes_right_after_the_mnli_run_of_its_seed_and_point():
    cfgs = configs("--task", "mnli,ax", "--grid", "learning_rate=1e-3,3e-3")
    assert [(c.task, c.learning_rate) for c in cfgs] == [
        ("mnli", 1e-3), ("ax", 1e-3), ("mnli", 3e-3), ("ax", 3e-3)]


@pytest.mark.parametrize("grid, message", [
    (["lr=1e-3"], "--grid: unknown setting 'lr'; grid settings: "),
    (["logging_steps=5,10"], "--grid logging_steps: it does not change the result"),
    (["seed=1,2"], "--grid seed: every point already runs for each seed of the sweep; --seeds"),
    (["fp16=1"], "--grid fp16: --fp16 is a switch, not one value"),
    (["learning_rate=1e-3,-1"], "--grid learning_rate: --learning-rate must be more than 0, not -1"),
    (["warmup_ratio=0.1,1"], "--grid warmup_ratio: --warmup-ratio must be at least 0 and less than 1, not 1"),
    (["batch_size=8,x"], "--grid batch_size: 'x' is not a valid --batch-size value (int)"),
    (["learning_rate"], "--grid 'learning_rate' is not NAME=V1,V2,..."),
    (["learning_rate=1e-3", "learning_rate=2e-3"], "--grid names learning_rate twice"),
    (["learning_rate=1e-3", "--learning-rate", "2e-3"], "--grid learning_rate and --learning-rate both set"),
    (["learning_rate=1e-3", "--output-dir", "out"], "--grid makes a run per point"),
])
def test_a_bad_grid_is_one_clear_line_and_exit_2_before_anything_loads(run_cli, capsys, grid, message):
    assert run_cli("--task", "rte", "--grid", *grid) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err and err.startswith("error:")
    assert not Path("results").exists()


# ---- the grid: end to end ---------------------------------------------------------

def test_a_grid_runs_every_point_selects_each_tasks_best_and_resumes(run_cli, capsys):
    assert run_cli(*GRID) == 0
    runs = runs_on_disk()
    assert len(runs) == 4  # 2 tasks x 2 points, each its own identity and folder
    assert sorted((r["task"], r["config"]["learning_rate"]) for r in runs.values()) == [
        ("rte", 1e-3), ("rte", 3e-3), ("stsb", 1e-3), ("stsb", 3e-3)]
    report = only_report()
    for task in ("rte", "stsb"):
        scores = {r["config"]["learning_rate"]: leaderboard.task_score(r) for r in runs.values() if r["task"] == task}
        # an undefined score loses; a tie goes to the earlier point
        best = max(scores, key=lambda lr: (scores[lr] is not None, scores[lr] or 0, -lr))
        points = report["tasks"][task]["points"]
        assert report["tasks"][task]["selected"] == {"learning_rate": best}
        assert [p["selected"] for p in points] == [p["settings"]["learning_rate"] == best for p in points]
        assert [p["score"]["mean"] for p in points] == [scores[1e-3], scores[3e-3]]
        # the tiny model's points also note what every run of it notes (its size's learning rate, the baseline)
        assert all(p["runs"][0] in runs and "subset: 16 train" in p["notes"] for p in points)
    out = capsys.readouterr()
    assert "Grid search: tiny-bert" in out.out and "GLUE leaderboard" in out.out
    md = next(Path("results/grids").glob("*.md")).read_text()
    assert "inflates dev scores" in md and md.count("| ✓ |") == 2 and "`learning_rate` in 0.001, 0.003" in md

    before = {p: p.stat().st_mtime_ns for p in Path("results/runs").rglob("metrics.json")}
    Path(next(Path("results/grids").glob("*.json"))).write_text("{}")
    assert run_cli(*GRID) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "4 of 4 run(s) already done" in err and err.count("already done in") == 4
    assert {p: p.stat().st_mtime_ns for p in Path("results/runs").rglob("metrics.json")} == before
    assert only_report() == report  # the same report, found and rewritten


def test_a_different_sweep_gets_its_own_report(run_cli):
    assert run_cli("--task", "rte", "--grid", "learning_rate=1e-3", *FAST) == 0  # one point: still a grid
    assert run_cli("--task", "rte", "--grid", "learning_rate=1e-3", *FAST, "--max-eval-samples", "8") == 0
    assert len(list(Path("results/grids").glob("*.json"))) == 2


def test_the_submission_comes_from_each_tasks_selected_point_and_first_seed(run_cli, monkeypatch):
    chosen, real = [], submission.from_runs
    monkeypatch.setattr(sweeps, "select", lambda points: len(points) - 1)  # not the first point, whatever the scores
    monkeypatch.setattr(submission, "from_runs", lambda run_dirs, *a: chosen.append(run_dirs) or real(run_dirs, *a))
    assert run_cli(*GRID, "--seeds", "1,2", "--do-predict") == 0
    report = only_report()
    expected = {task: Path("results") / report["tasks"][task]["points"][-1]["runs"][0] for task in ("rte", "stsb")}
    assert [{t: Path(d) for t, d in run_dirs.items()} for run_dirs in chosen] == [expected]
    for task, folder in expected.items():
        record = json.loads((folder / "metrics.json").read_text())
        assert (record["seed"], record["config"]["learning_rate"]) == (1, 3e-3)
    name = next(Path("results/grids").glob("*.json")).stem
    rte = Path("results/submissions", f"{name}-seed1", "RTE.tsv").read_text()
    assert rte == submission.convert(get_task("rte"), (expected["rte"] / "predictions_test.tsv").read_text())


# ---- expected bounds -----------------------------------------------------------------

def test_bounds_that_hold_exit_0_and_each_is_said(run_cli, capsys):
    assert run_cli("--task", "rte,stsb", *FAST, "--expect", "rte:accuracy>=0,stsb:pearson>=-1",
                   "--expect", "stsb:combined_score<=1") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("held ") == 3 and "held rte:accuracy>=0: got" in err and "missed" not in err


def test_a_missed_bound_exits_3_naming_it_and_its_value(run_cli, capsys, tmp_path):
    (tmp_path / "bounds.txt").write_text("# CI gate\nrte:accuracy >= 0   # any score\n\nrte:accuracy>1, rte:accuracy<=1\n")
    assert run_cli("--task", "rte", *FAST, "--expect-file", "bounds.txt") == 3
    err = " ".join(capsys.readouterr().err.split())
    accuracy = json.loads(next(Path("results/runs").rglob("metrics.json")).read_text())["metrics"]["accuracy"]
    assert "held rte:accuracy>=0: got" in err and "held rte:accuracy<=1: got" in err
    assert f"missed 1 of 3 expected bound(s): rte:accuracy>1: got {accuracy:.4f} (mean of 1 seed(s))" in err


@pytest.mark.parametrize("precision", PRECISIONS)
def test_with_a_grid_a_bound_applies_to_the_selected_point(run_cli, capsys, precision):
    assert run_cli("--task", "stsb", *GRID[2:], "--seeds", "1,2", "--expect", "stsb:pearson>=-1", precision) == 0
    points = only_report()["tasks"]["stsb"]["points"]
    got = float(re.search(r"stsb:pearson>=-1: got (\S+) \(mean of 2 seed", capsys.readouterr().err)[1])
    assert [got == pytest.approx(p["metrics"]["pearson"]["mean"] / 100, abs=1e-4) for p in points] == \
        [p["selected"] for p in points]


def outcome(task: str, **metrics) -> tuple:
    return None, Outcome({"task": task, "metrics": metrics}, Path("results/runs/m") / task)


def test_an_undefined_score_loses_the_selection_whatever_the_others_mean():
    point = lambda *pearsons: sweeps.Point("stsb", {}, [outcome("stsb", pearson=p, spearmanr=p) for p in pearsons])
    # the second point's one defined seed is the best score, but its other seed collapsed to a constant
    assert sweeps.select([point(0.2, 0.3), point(0.9, None)]) == 0
    assert sweeps.select([point(None, None), point(0.1, 0.1)]) == 1
    assert sweeps.select([point(None, None), point(None, None)]) == 0
    assert sweeps.notes(point(0.9, None))[0] == "score undefined on 1 of 2 seed(s)"


def test_a_bound_is_missed_where_a_seed_left_its_metric_undefined(capsys):
    from rich.console import Console

    bound = sweeps.parse_bounds(["stsb:pearson>=0.5"], None, [get_task("stsb")])
    assert sweeps.check_expected(bound, [outcome("stsb", pearson=0.9), outcome("stsb", pearson=0.8)], Console())
    assert not sweeps.check_expected(bound, [outcome("stsb", pearson=0.9), outcome("stsb", pearson=None)], Console())
    assert "got 0.9000 (mean of 1 seed(s); undefined on 1 of 2)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("expect, message", [
    ("cola:matthews_correlation>=0.3", "--expect 'cola:matthews_correlation>=0.3': cola is not in this sweep (rte)"),
    ("rte:matthews_correlation>=0.3", "rte does not report matthews_correlation; it reports accuracy"),
    ("rte:accuracy=0.5", "'rte:accuracy=0.5' is not TASK:METRIC followed by >=, >, <= or < and a number"),
    ("rte:accuracy>=high", "'high' is not a finite number"),
    ("squad:f1>0", "squad is not in this sweep (rte)"),
    ("rte:accuracy>=50", "so 50 cannot be met or missed; did you mean 0.5?"),  # the tables' x100 scale
])
def test_a_bad_bound_is_one_clear_line_and_exit_2_before_any_run(run_cli, capsys, expect, message):
    assert run_cli("--task", "rte", *FAST, "--expect", expect) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not Path("results").exists()


def test_a_bad_bound_file_names_its_line(run_cli, capsys, tmp_path):
    (tmp_path / "bounds.txt").write_text("rte:accuracy>=0\nrte:f1>=0.5  # mrpc's, not rte's\n")
    assert run_cli("--task", "rte", "--expect-file", "bounds.txt") == 2
    assert "bounds.txt:2: rte does not report f1" in " ".join(capsys.readouterr().err.split())
    assert run_cli("--task", "rte", "--expect-file", "missing.txt") == 2
    assert "--expect-file missing.txt cannot be read" in " ".join(capsys.readouterr().err.split())
    (tmp_path / "empty.txt").write_text("# every bound commented out\n\n")
    assert run_cli("--task", "rte", "--expect-file", "empty.txt") == 2  # a gate that checks nothing
    assert "--expect-file empty.txt holds no bounds" in " ".join(capsys.readouterr().err.split())


def test_a_bound_file_saved_with_a_byte_order_mark_is_read(run_cli, tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffrte:accuracy>=0\r\n".encode())
    assert run_cli("--task", "rte", *FAST, "--expect-file", "bom.txt") == 0


def test_ax_and_mnli_report_what_their_runs_record():
    assert sweeps.reported_metrics(get_task("mnli")) == ["accuracy", "accuracy_mm"]
    assert sweeps.reported_metrics(get_task("mrpc")) == ["f1", "accuracy", "combined_score"]
    assert sweeps.reported_metrics(get_task("ax")) == []


# ---- --smoke ------------------------------------------------------------------------

def test_smoke_fills_only_the_settings_not_given_and_the_recipe_the_rest():
    from glue_runner.run import settled

    task = get_task("cola")
    cola = configs("--task", "cola", "--smoke")[0]
    assert (cola.max_train_samples, cola.max_eval_samples, cola.max_steps) == (256, 256, None)
    ran = settled(cola, task)  # CoLA's smoke budget of steps, and its recipe's 5e-5
    assert (ran.max_steps, ran.learning_rate) == (task.smoke.steps, 5e-5)
    given = configs("--task", "cola", "--smoke", "--num-train-epochs", "2", "--max-train-samples", "64")[0]
    assert (given.max_train_samples, given.max_eval_samples, given.num_train_epochs) == (64, 256, 2.0)
    assert settled(given, task).max_steps == 0  # the epochs given, not the budget
    assert settled(configs("--task", "cola", "--smoke", "--max-steps", "5")[0], task).max_steps == 5
    gridded = configs("--task", "cola", "--smoke", "--grid", "num_train_epochs=2,3")
    assert [(c.num_train_epochs, settled(c, task).max_steps) for c in gridded] == [(2.0, 0), (3.0, 0)]


def test_smoke_runs_end_to_end_and_its_runs_are_noted_as_smoke_and_subsets(run_cli, glue_dir, tmp_path):
    assert run_cli("--task", "rte", "--smoke", "--batch-size", "8") == 0  # RTE is not expected to learn: exit 0
    record = next(iter(runs_on_disk().values()))
    assert (record["config"]["max_train_samples"], record["config"]["max_steps"]) == (256, get_task("rte").smoke.steps)
    assert record["train"]["steps"] == get_task("rte").smoke.steps and record["smoke"]["expected"] is False
    row = next(line for line in Path("results/runs.md").read_text().splitlines() if "runs/tiny-bert/rte-seed42" in line)
    notes = row.split("|")[-3].strip()
    assert notes.startswith("smoke") and "subset" not in notes  # 48 examples: all kept
    # a larger training file is cut to 256, and the tables say so
    bigger = tmp_path / "big"
    shutil.copytree(glue_dir, bigger)
    lines = (bigger / "RTE" / "train.tsv").read_text().splitlines()
    (bigger / "RTE" / "train.tsv").write_text("\n".join(lines[:1] + lines[1:] * 7) + "\n")
    assert run_cli("--task", "rte", "--smoke", "--batch-size", "8", "--data-dir", str(bigger), data=False) == 0
    assert "subset: 256 train" in Path("results/runs.md").read_text()


def test_do_predict_on_a_finished_sweep_without_test_predictions_says_to_overwrite(run_cli, capsys):
    assert run_cli("--task", "rte,wnli", *FAST) == 0
    capsys.readouterr()
    assert run_cli("--task", "rte,wnli", *FAST, "--do-predict") == 2  # said before anything runs
    err = " ".join(capsys.readouterr().err.split())
    assert "is already done, without test predictions" in err and "pass --overwrite" in err
    assert run_cli("--task", "rte,wnli", *FAST, "--do-predict", "--overwrite") == 0
    assert len(list(Path("results/runs").rglob("predictions_test.tsv"))) == 2
