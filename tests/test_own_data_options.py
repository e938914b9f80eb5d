"""What own-data users expect beside the defaults: --class-weights for skewed labels, --truncation for
texts longer than --max-seq-length, --encoding for files that are not UTF-8."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glue_runner import data, train
from glue_runner.config import RunConfig
from glue_runner.data import keep_ends
from tests.test_baseline import labelled

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]


# ---- --class-weights ------------------------------------------------------------

def test_balanced_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0] * 8 + [1] * 2 + [2] * 6)
    ours = train.balanced_weights(labels, "single_label_classification", 4, torch.device("cpu"))
    assert ours[:3].tolist() == pytest.approx(compute_class_weight("balanced", classes=np.arange(3), y=labels) * 3 / 4)
    assert ours[3] == 1.0  # a class with no example: no loss to weigh
    rows = np.array([[1, 0], [1, 0], [1, 1], [0, 0]])  # label 0: 3 of 4 on, label 1: 1 of 4
    assert train.balanced_weights(rows, "multi_label_classification", 2, torch.device("cpu")).tolist() == \
        pytest.approx([1 / 3, 3.0])


def test_the_weighted_loss_weighs_each_class():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0])
    plain = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert train.weighted_loss(logits, labels, torch.tensor([3.0, 1.0])) == pytest.approx(plain.mean().item())
    skewed = train.weighted_loss(logits, torch.tensor([0, 1]), torch.tensor([1.0, 3.0]))
    assert skewed == pytest.approx(((plain[0] + 3 * torch.nn.functional.cross_entropy(
        logits[1:], torch.tensor([1]))) / 4).item())


def test_class_weights_train_through_the_weighted_loss(run_cli, tmp_path, monkeypatch):
    calls = []
    real = train.weighted_loss
    monkeypatch.setattr(train, "weighted_loss", lambda *a: calls.append(a[2]) or real(*a))
    trainset, dev = labelled(tmp_path / "train.csv", 40, 0, True), labelled(tmp_path / "dev.csv", 16, 1, True)
    assert run_cli("--train-file", str(trainset), "--validation-file", str(dev), *FAST, "--class-weights",
                   "--output-dir", "run", data=False) == 0
    assert calls and len(calls[0]) == 2
    common = sum(row[1] == "common" for row in csv.reader(open(trainset)) if row[1] != "label")
    weights = sorted(calls[0].tolist())
    assert weights == pytest.approx(sorted([40 / (2 * common), 40 / (2 * (40 - common))]))
    assert json.loads(Path("run/metrics.json").read_text())["config"]["class_weights"] is True


def test_class_weights_on_a_regression_task_are_refused(run_cli, capsys):
    assert run_cli("--task", "stsb", "--class-weights") == 2
    assert "--class-weights weighs classes, and stsb is a regression task" in capsys.readouterr().err


# ---- --truncation ----------------------------------------------------------------

def mask(*runs):
    """[CLS] run [SEP] (run [SEP]) as a special-tokens mask."""
    out = [1]
    for n in runs:
        out += [0] * n + [1]
    return out


def test_head_tail_and_head_plus_tail_keep_the_special_tokens():
    assert keep_ends(mask(10), 6, "tail") == [0, 7, 8, 9, 10, 11]
    assert keep_ends(mask(10), 10, "head+tail") == [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]  # 2 from the start, 6 from the end
    assert keep_ends(mask(3), 10, "tail") == [0, 1, 2, 3, 4]  # short enough: all of it


def test_a_pair_cuts_its_longer_text_first():
    assert keep_ends(mask(3, 10), 10, "tail") == [0, 1, 2, 3, 4, 11, 12, 13, 14, 15]  # the 3 stay, the 10 keep 4
    assert keep_ends(mask(8, 10), 11, "head+tail") == [0, 1, 6, 7, 8, 9, 10, 17, 18, 19, 20]  # 4 each


def test_tail_truncation_keeps_the_end_of_a_long_review(run_cli, tiny_bert, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    long = "the cat was good " * 20 + "the dog was bad"
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + f"{long},a\nthe cat,b\n")
    cfg = RunConfig(task=None, model="m", train_file=path, validation_file=path)
    task = data.task_for(cfg)
    splits = data.load_splits(task, cfg, log=lambda *a, **k: None, with_test=False)
    kept = {how: data.tokenize(splits, task, tokenizer, 12, tmp_path / "cache", how)["train"]["input_ids"][0]
            for how in ("head", "tail", "head+tail")}
    words = {how: tokenizer.decode(ids, skip_special_tokens=True) for how, ids in kept.items()}
    assert all(len(ids) == 12 for ids in kept.values())
    assert words["head"].startswith("the cat was good") and not words["head"].endswith("bad")
    assert words["tail"].endswith("the dog was bad") and not words["tail"].startswith("the cat was good the")
    assert words["head+tail"].startswith("the cat") and words["head+tail"].endswith("dog was bad")


def test_truncation_is_a_setting_of_the_run(run_cli, capsys):
    assert run_cli("--task", "sst2", *FAST, "--max-train-samples", "8", "--truncation", "head+tail",
                   "--output-dir", "run") == 0
    assert json.loads(Path("run/metrics.json").read_text())["identity"]["truncation"] == "head+tail"
    with pytest.raises(SystemExit) as stop:
        run_cli("--task", "sst2", "--truncation", "middle")
    assert stop.value.code == 2
    assert "invalid choice: 'middle'" in capsys.readouterr().err


# ---- --encoding ------------------------------------------------------------------

def own_files(tmp_path, text: str, encoding: str, name: str = "reviews.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


ROWS = "text,label\r\n\u201cthe caf\u00e9 was good\u201d,a\r\nthe cat was bad,b\r\n"


def test_excels_windows_csv_needs_its_encoding_named(run_cli, tmp_path, capsys):
    path = own_files(tmp_path, ROWS, "cp1252")
    assert run_cli("--train-file", str(path), "--validation-file", str(path), *FAST, data=False) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not UTF-8 text (line 2)" in err and "--encoding cp1252" in err
    cfg = RunConfig(task=None, model="m", train_file=path, validation_file=path, encoding="cp1252")
    task = data.task_for(cfg)
    texts = data.load_splits(task, cfg, log=lambda *a, **k: None, with_test=False)["train"].dataset["sentence"]
    assert texts[0] == "\u201cthe caf\u00e9 was good\u201d"


def test_a_utf16_file_with_its_byte_order_mark_is_read_as_it_is(tmp_path):
    path = own_files(tmp_path, "\ufeff" + ROWS.replace(",", "\t"), "utf-16-le", "reviews.tsv")  # Excel's "Unicode text"
    cfg = RunConfig(task=None, model="m", train_file=path, validation_file=path)
    texts = data.load_splits(data.task_for(cfg), cfg, log=lambda *a, **k: None, with_test=False)["train"].dataset
    assert texts["sentence"] == ["\u201cthe caf\u00e9 was good\u201d", "the cat was bad"]


def test_an_unknown_encoding_is_one_line(run_cli, tmp_path, capsys):
    path = own_files(tmp_path, ROWS, "utf-8")
    assert run_cli("--train-file", str(path), "--validation-file", str(path), "--encoding", "klingon", data=False) == 2
    assert "--encoding 'klingon' is not a text encoding Python knows" in capsys.readouterr().err


def test_the_same_bytes_read_in_another_encoding_are_not_served_from_the_cache(tmp_path):
    path = own_files(tmp_path, ROWS, "cp1252")
    found = []
    for encoding in ("cp1252", "latin-1"):  # \u201c is 0x93 in cp1252, a control character in latin-1
        cfg = RunConfig(task=None, model="m", train_file=path, validation_file=path, encoding=encoding)
        found.append(data.load_splits(data.task_for(cfg), cfg, log=lambda *a, **k: None, with_test=False)["train"])
    assert found[0].fingerprint != found[1].fingerprint
    assert found[0].dataset["sentence"][0] != found[1].dataset["sentence"][0]


# ---- files as spreadsheet programs and pandas export them -------------------------

def test_a_pandas_csv_with_its_index_column_is_a_single_text_task(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(",text,label\n0,the cat was good,a\n1,the dog was bad,b\n")  # pandas' to_csv()
    task = data.task_for(RunConfig(task=None, model="m", train_file=path, validation_file=path))
    assert task.text_fields == ("sentence",) and task.columns["sentence"] == "text"


@pytest.mark.parametrize("name, text, said", [
    ("reviews.csv", "text;label\nthe cat;a\n", "separated by semicolons"),
    ("reviews.json", '[{"text": "the cat", "label": "a"}]\n', "a JSON array; glue-run reads JSON lines"),
    ("reviews.xlsx", "PK", 'save it as "CSV UTF-8 (Comma delimited)"'),
])
def test_exports_glue_run_cannot_read_say_how_to_export_them(run_cli, tmp_path, capsys, name, text, said):
    path = tmp_path / name
    path.write_text(text)
    assert run_cli("--train-file", str(path), "--validation-file", str(path), data=False) == 2
    assert said in " ".join(capsys.readouterr().err.split())


def test_an_empty_path_is_refused_not_taken_for_the_current_folder(run_cli, capsys):
    with pytest.raises(SystemExit) as stop:
        run_cli("--task", "sst2", "--output-dir", "")
    assert stop.value.code == 2
    assert "--output-dir: an empty path (an unset shell variable?)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, flag", [
    (["leaderboard", "--results-dir", ""], "--results-dir"),
    (["compare", "a", "b", "--results-dir="], "--results-dir"),
    (["compare", "a", "b", "--markdown", ""], "--markdown"),
    (["validate-submission", ""], "folder"),
    (["--task", "sst2", "--expect-file", ""], "--expect-file"),
])
def test_the_subcommands_refuse_an_empty_path_too(argv, flag, capsys):
    from glue_runner import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert f"{flag}: an empty path (an unset shell variable?)" in capsys.readouterr().err
