"""The fourth census's findings (issue 30), each a case a new user meets: input accepted without a word or
explained wrongly, and the tracebacks. Each test fails on the code before the fix."""

import json
import signal
from pathlib import Path

import numpy as np
import pytest

import fixtures
from fixtures import POSITIVE
from glue_runner import cli, leaderboard
from glue_runner.config import RunConfig
from glue_runner.train import Runtime, left_out

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]


def reviews(path: Path, rows: int = 24, **rows_of) -> Path:
    path.write_text(fixtures.reviews_csv(rows, **rows_of))
    return path


def own(tmp_path, **kwargs) -> list[str]:
    train = reviews(tmp_path / "train.csv", **kwargs)
    dev = reviews(tmp_path / "dev.csv", 12, **kwargs)
    return ["--train-file", str(train), "--validation-file", str(dev), *FAST]


def err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


# ---- accepted without a word ---------------------------------------------------------

def test_labels_that_differ_only_in_case_are_named(run_cli, tmp_path, capsys):
    assert run_cli(*own(tmp_path, label=lambda i: ["pos", "Pos", "neg"][i % 3]), data=False) == 0
    assert "the labels 'Pos', 'pos' differ only in case, so they are different classes" in err(capsys)


def test_empty_texts_are_counted_named_and_recorded(run_cli, tmp_path, capsys):
    flags = own(tmp_path, text=lambda i: "" if i in (3, 7) else f"the {POSITIVE[i % 4]} cat")
    assert run_cli(*flags, "--output-dir", "run", data=False) == 0
    said = err(capsys)
    assert "train.csv: 2 row(s) have an empty text (line 5, 9); they are kept" in said
    assert json.loads(Path("run/metrics.json").read_text())["data"]["empty_texts"] == {"train": 2, "validation": 2}


def test_a_header_naming_a_column_twice_is_refused(run_cli, tmp_path, capsys):
    flags = own(tmp_path, header="text,text,label", text=lambda i: f"the {POSITIVE[i % 4]} cat,a dog")
    assert run_cli(*flags, data=False) == 2
    assert "the header names column 'text' more than once" in err(capsys)


def test_the_training_file_as_the_dev_file_is_said_and_noted(run_cli, tmp_path, capsys):
    train = reviews(tmp_path / "train.csv")
    copy = tmp_path / "copy.csv"
    copy.write_bytes(train.read_bytes())  # the same content under another name counts the same
    assert run_cli("--train-file", str(train), "--validation-file", str(copy), *FAST, data=False) == 0
    assert "the dev file holds the training data (the same content)" in err(capsys)
    assert "scored on its training data" in Path("results/runs.md").read_text()


@pytest.mark.parametrize("flags, message", [
    (["--seeds", ""], "--seeds is empty"),
    (["--seeds", "1,1"], "--seeds names seed 1 more than once"),
    (["--seed", "5", "--seeds", "1,2"], "--seed 5 and --seeds 1,2 both set the seeds"),
    (["--task", "rte,rte"], "--task names rte twice"),
])
def test_repeated_or_contradicting_sweep_flags_are_refused(run_cli, capsys, flags, message):
    assert run_cli(*(["--task", "rte"] if "--task" not in flags else []), *flags, *FAST) == 2
    assert message in err(capsys) and not Path("results").exists()


def test_the_columns_read_are_named_in_the_first_lines(run_cli, tmp_path, capsys):
    assert run_cli(*own(tmp_path), data=False) == 0
    assert "reading the text from column 'text' and the label from 'label'" in err(capsys)


def test_the_examples_an_epoch_leaves_out_are_counted_and_said(run_cli, capsys):
    lengths = np.full(50, 10)
    cfg = RunConfig(task="rte", model="m", batch_size=4)
    assert left_out(lengths, cfg, Runtime("cpu"), 13) == 0  # one process: 13 batches, the last of 2
    # two processes: 13 batches of 4 (the last of 2) make 6 steps each; one batch is left out
    assert left_out(lengths, cfg, Runtime("cpu", world_size=2), 6) in (2, 4)
    assert run_cli("--task", "rte", *FAST, "--batch-size", "4", "--gradient-accumulation-steps", "5") == 0
    assert "each epoch leaves out 8 of 48 training examples" in err(capsys)  # 12 batches of 4: 2 steps of 5


def test_an_empty_results_folder_gets_no_files(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["leaderboard", "--results-dir", str(tmp_path / "empty")]) == 2
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_results_folder_that_cannot_be_written_is_still_shown(run_cli, monkeypatch, capsys):
    assert run_cli("--task", "rte", *FAST) == 0
    before = {p: p.read_bytes() for p in Path("results").glob("*.*")}

    def read_only(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(leaderboard, "write_atomic", read_only)
    monkeypatch.setattr(leaderboard.tables, "write_atomic", read_only)
    capsys.readouterr()
    assert cli.main(["leaderboard"]) == 0
    out = capsys.readouterr()
    said = " ".join(out.err.split())
    assert "tiny-bert" in out.out and "were not rewritten (" in said and "Permission denied" in said
    assert {p: p.read_bytes() for p in Path("results").glob("*.*")} == before


# ---- explained wrongly -----------------------------------------------------------------

def test_a_tsv_of_commas_is_told_to_be_renamed(run_cli, tmp_path, capsys):
    train = reviews(tmp_path / "train.tsv")
    assert run_cli("--train-file", str(train), "--validation-file", str(train), *FAST, data=False) == 2
    assert "its columns are separated by commas ('text', 'label'), not by tabs as its name says; rename it to " \
           ".csv" in err(capsys)


def test_one_class_is_refused_before_training(run_cli, tmp_path, capsys):
    assert run_cli(*own(tmp_path, label=lambda i: "pos"), data=False) == 2
    assert "every training row has the label 'pos'; a classifier learns to tell labels apart" in err(capsys)


def test_a_label_column_of_text_is_said_to_be_text(run_cli, tmp_path, capsys):
    swapped = dict(text=lambda i: "pos" if i % 2 else "neg", label=lambda i: f"the {POSITIVE[i % 4]} cat number {i}")
    train, dev = reviews(tmp_path / "train.csv", 40, **swapped), reviews(tmp_path / "dev.csv", 12, **swapped)
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), *FAST, data=False) == 2
    assert "column 'label' holds text, not labels (40 different values in 40 rows" in err(capsys)


def test_scores_without_regression_are_told_to_ask_for_it(run_cli, tmp_path, capsys):
    assert run_cli(*own(tmp_path, label=lambda i: f"{i % 9 / 2:.1f}"), data=False) == 2
    said = err(capsys)
    assert "the labels are numbers with fractions" in said and "pass --problem-type regression" in said
    assert run_cli(*own(tmp_path, label=lambda i: f"{i % 9 / 2:.1f}"), "--problem-type", "regression",
                   data=False) == 0


def test_the_advice_after_a_run_that_learned_nothing_names_the_rate_that_trained(run_cli, tmp_path, capsys):
    # one text for every row, half its labels each way: nothing to learn. The tiny model's size makes the
    # defaults train at 10x the fallback's 5e-5, and the advice names the 0.0005 that trained
    same = dict(text=lambda i: "the cat saw a dog", label=lambda i: "ab"[i % 2])
    train, dev = reviews(tmp_path / "t.csv", **same), reviews(tmp_path / "d.csv", 12, **same)
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--num-train-epochs", "1",
                   data=False) == 0
    said = err(capsys)
    assert "learned nothing usable" in said and "(--learning-rate 0.0005 now;" in said


# ---- tracebacks -----------------------------------------------------------------------

def test_a_gpt2_style_decoder_trains_padded_with_its_end_token(run_cli, tmp_path, capsys):
    model = fixtures.tiny_gpt2(tmp_path / "tiny-gpt2")
    assert run_cli("--task", "mrpc", *FAST, "--model", str(model), "--save-model", "--output-dir", "run",
                   model=False) == 0
    assert "has no padding token: padding with its end-of-text token '<|endoftext|>'" in err(capsys)
    saved = json.loads(Path("run/model/config.json").read_text())
    assert saved["pad_token_id"] == saved["eos_token_id"]


def test_a_stop_under_way_ignores_further_signals():
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        from rich.console import Console

        assert cli.interrupted(KeyboardInterrupt(), Console(stderr=True)) == 130
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
