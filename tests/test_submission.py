"""glue_runner.submission: the files the GLUE leaderboard accepts, byte for byte, and the validator.

The end-to-end test runs `glue-run --task all --seeds 1,2 --do-predict` with the tiny model on
the fixture data and checks that the zip is a valid submission and the leaderboard reads it.
"""

import zipfile

import pytest

from glue_runner import submission
from glue_runner.tasks import get_task

FILES = ["CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv", "MNLI-mm.tsv",
         "QNLI.tsv", "RTE.tsv", "WNLI.tsv", "AX.tsv"]


def test_the_eleven_files_in_leaderboard_order():
    assert list(submission.submission_files()) == FILES
    assert submission.submission_files()["MNLI-mm.tsv"] == (get_task("mnli"), "test_mismatched")
    assert submission.submission_files()["AX.tsv"] == (get_task("ax"), "test")


@pytest.mark.parametrize("task, predictions, expected", [
    # integers: the label's position in label_names
    ("cola", "index\tprediction\n0\tacceptable\n1\tunacceptable\n", b"index\tprediction\n0\t1\n1\t0\n"),
    ("sst2", "index\tprediction\n0\tpositive\n1\tnegative\n", b"index\tprediction\n0\t1\n1\t0\n"),
    ("mrpc", "index\tprediction\n0\tequivalent\n1\tnot_equivalent\n", b"index\tprediction\n0\t1\n1\t0\n"),
    ("qqp", "index\tprediction\n7\tduplicate\n9\tnot_duplicate\n", b"index\tprediction\n7\t1\n9\t0\n"),
    ("wnli", "index\tprediction\n0\tentailment\n1\tnot_entailment\n", b"index\tprediction\n0\t1\n1\t0\n"),
    # label strings
    ("mnli", "index\tprediction\n0\tneutral\n1\tcontradiction\n2\tentailment\n",
     b"index\tprediction\n0\tneutral\n1\tcontradiction\n2\tentailment\n"),
    ("ax", "index\tprediction\n0\tcontradiction\n", b"index\tprediction\n0\tcontradiction\n"),
    ("qnli", "index\tprediction\n0\tnot_entailment\n", b"index\tprediction\n0\tnot_entailment\n"),
    ("rte", "index\tprediction\n0\tentailment\n", b"index\tprediction\n0\tentailment\n"),
    # STS-B: clipped to [0, 5], 3 decimals
    ("stsb", "index\tprediction\n0\t5.731\n1\t-0.200\n2\t2.346\n3\t0.000\n4\t5.000\n",
     b"index\tprediction\n0\t5.000\n1\t0.000\n2\t2.346\n3\t0.000\n4\t5.000\n"),
])
def test_convert_byte_level(task, predictions, expected):
    assert submission.convert(get_task(task), predictions).encode("utf-8") == expected


def valid_folder(folder, rows=3):
    """A hand-written valid submission: `rows` rows per file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (task, _) in submission.submission_files().items():
        value = "1.500" if task.regression else submission.allowed_labels(task)[0]
        (folder / name).write_text("index\tprediction\n" + "".join(f"{i}\t{value}\n" for i in range(rows)))
    return folder


def test_validator_accepts_a_valid_folder(tmp_path):
    folder = valid_folder(tmp_path / "sub")
    assert submission.validate(folder, {name: 3 for name in FILES}) == []


@pytest.mark.parametrize("damage, problem", [
    (lambda f: (f / "WNLI.tsv").unlink(), "WNLI.tsv is missing"),
    (lambda f: (f / "notes.txt").write_text("hi"), "notes.txt is not a GLUE submission file"),
    (lambda f: (f / "CoLA.tsv").write_text("id\tlabel\n0\t1\n1\t0\n2\t0\n"), "CoLA.tsv:1: header must be"),
    (lambda f: (f / "CoLA.tsv").write_text("index\tprediction\n0\t1\n1\tacceptable\n2\t0\n"),
     "CoLA.tsv:3: prediction 'acceptable' is not one of 0, 1"),
    (lambda f: (f / "RTE.tsv").write_text("index\tprediction\n0\t1\n1\tentailment\n2\tentailment\n"),
     "RTE.tsv:2: prediction '1' is not one of entailment, not_entailment"),
    (lambda f: (f / "MNLI-m.tsv").write_text("index\tprediction\n0\tneutral\n1\tneutral\n"),
     "MNLI-m.tsv: 2 rows, but the test set has 3"),
    (lambda f: (f / "QQP.tsv").write_text("index\tprediction\n0\t1\n0\t1\n2\t1\n"), "QQP.tsv:3: index 0 appears twice"),
    (lambda f: (f / "QNLI.tsv").write_text("index\tprediction\nx\tentailment\n1\tentailment\n2\tentailment\n"),
     "QNLI.tsv:2: index 'x' is not a whole number"),
    (lambda f: (f / "STS-B.tsv").write_text("index\tprediction\n0\t5.5\n1\t1.0\n2\t1.0\n"),
     "STS-B.tsv:2: score 5.5 is outside [0, 5]"),
    (lambda f: (f / "STS-B.tsv").write_text("index\tprediction\n0\thigh\n1\t1.0\n2\t1.0\n"),
     "STS-B.tsv:2: prediction 'high' is not a number"),
    (lambda f: (f / "AX.tsv").write_text("index\tprediction\n0\tneutral\textra\n1\tneutral\n2\tneutral\n"),
     "AX.tsv:2: 3 fields, expected 2"),
])
def test_validator_names_each_kind_of_problem(tmp_path, damage, problem):
    folder = valid_folder(tmp_path / "sub")
    damage(folder)
    problems = submission.validate(folder, {name: 3 for name in FILES})
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_validator_counts_bad_rows(tmp_path):
    folder = valid_folder(tmp_path / "sub")
    (folder / "SST-2.tsv").write_text("index\tprediction\n0\tpositive\n1\tpositive\n2\t1\n")
    assert submission.validate(folder) == ["SST-2.tsv:2: prediction 'positive' is not one of 0, 1",
                                           "SST-2.tsv: 2 bad rows in all"]


def test_zip_holds_the_files_at_its_top_level(tmp_path):
    folder = valid_folder(tmp_path / "sub")
    target = submission.zip_folder(folder)
    assert target == tmp_path / "sub.zip"
    with zipfile.ZipFile(target) as zf:
        assert zf.namelist() == FILES
        assert zf.read("STS-B.tsv") == (folder / "STS-B.tsv").read_bytes()


@pytest.fixture
def one_thread():
    # 20 runs of a tiny model: its matrices are too small to share out, and on a busy CPU more
    # threads only wait for each other (about 60 s instead of 10 s here).
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_task_all_with_seeds_and_do_predict_end_to_end(run_cli, tmp_path, capsys, one_thread):
    from fixtures import N_TEST

    from glue_runner.cli import main

    assert run_cli("--task", "all", "--seeds", "1,2", "--do-predict", "--num-train-epochs", "1",
                   "--max-train-samples", "16", "--max-eval-samples", "8") == 0
    err = capsys.readouterr().err
    results = tmp_path / "results"
    target = results / "submissions" / "tiny-bert-seed1.zip"
    assert target.is_file(), err
    with zipfile.ZipFile(target) as zf:
        assert zf.namelist() == FILES
        for name in FILES:
            lines = zf.read(name).decode("utf-8").split("\n")
            assert lines[0] == "index\tprediction" and lines[-1] == "" and len(lines) == N_TEST + 2
        assert {line.split("\t")[1] for line in zf.read("AX.tsv").decode().split("\n")[1:-1]} <= {
            "entailment", "neutral", "contradiction"}
    # built from the first seed's runs
    folder = results / "submissions" / "tiny-bert-seed1"
    assert (folder / "MNLI-m.tsv").read_text() == submission.convert(
        get_task("mnli"), (results / "runs" / "tiny-bert" / "mnli-seed1" / "predictions_test_matched.tsv").read_text())

    # the runs already wrote the leaderboard; the subcommand reads them again
    assert (results / "leaderboard.png").is_file()
    assert main(["leaderboard"]) == 0  # run_cli has chdir'd to tmp_path: ./results
    assert "| tiny-bert | 1,2 |" in (results / "leaderboard.md").read_text()

    assert run_cli("validate-submission", str(folder), model=False) == 0
    (folder / "RTE.tsv").write_text("index\tprediction\n0\tmaybe\n")
    assert run_cli("validate-submission", str(folder), model=False) == 2
    err = capsys.readouterr().err
    assert "RTE.tsv:2: prediction 'maybe'" in err and f"RTE.tsv: 1 rows, but the test set has {N_TEST}" in err
