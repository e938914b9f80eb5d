"""Data as people hold it: Parquet files (pandas' and Spark's export) and gzip-compressed text files
(.csv.gz, .tsv.gz, .jsonl.gz) read with the same checks as CSV, for training as for prediction."""

import csv
import gzip
import json
from pathlib import Path

import pytest

from glue_runner import data
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError

ROWS = [{"headline": f"the {size} {noun} was good", "topic": topic}
        for size in ("big", "small") for noun, topic in (("cat", "sports"), ("dog", "politics"), ("car", "science"))] * 3


def write_as(path: Path, rows: list[dict]) -> Path:
    """rows in the format path's name says: .csv, .tsv, .jsonl or .parquet, each text one also .gz."""
    import pyarrow
    import pyarrow.parquet

    if path.suffix == ".parquet":
        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
        return path
    kind = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    with (gzip.open(path, "wt", newline="") if path.suffix == ".gz" else open(path, "w", newline="")) as f:
        if kind == ".jsonl":
            f.writelines(json.dumps(row) + "\n" for row in rows)
        else:
            writer = csv.DictWriter(f, list(rows[0]), delimiter="\t" if kind == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    return path


def splits_of(train: Path, dev: Path, **settings) -> dict:
    cfg = RunConfig(model="m", train_file=train, validation_file=dev, label_column="topic", **settings)
    task = data.task_for(cfg)
    return task, {name: split.dataset for name, split in data.load_splits(task, cfg, log=lambda *a, **k: None).items()}


@pytest.mark.parametrize("name", ["train.parquet", "train.csv.gz", "train.tsv.gz", "train.jsonl.gz"])
def test_parquet_and_gzip_files_read_as_their_csv_does(tmp_path, name):
    csv_task, from_csv = splits_of(write_as(tmp_path / "train.csv", ROWS), write_as(tmp_path / "dev.csv", ROWS[:6]))
    other = tmp_path / "other"
    other.mkdir()
    task, splits = splits_of(write_as(other / name, ROWS), write_as(other / name.replace("train", "dev"), ROWS[:6]))
    assert task.label_names == csv_task.label_names == ("politics", "science", "sports")
    assert task.text_fields == ("sentence",) and task.columns["sentence"] == "headline"
    for split in ("train", "validation"):
        assert splits[split]["sentence"] == from_csv[split]["sentence"]
        assert splits[split]["label"] == from_csv[split]["label"]


def test_a_parquet_file_gets_the_column_checks_of_a_csv(tmp_path):
    train = write_as(tmp_path / "train.parquet", ROWS)
    with pytest.raises(GlueRunnerError, match=r"no column 'label'; the header has 'headline', 'topic'"):
        data.task_for(RunConfig(model="m", train_file=train, validation_file=train))
    dev = write_as(tmp_path / "dev.parquet", [{"text": r["headline"], "topic": r["topic"]} for r in ROWS])
    with pytest.raises(GlueRunnerError, match=r"dev.parquet: missing column\(s\) 'headline'; the file has 'text', "
                                              "'topic'"):
        splits_of(train, dev)
    dev = write_as(tmp_path / "unknown.parquet", [{"headline": "the cat", "topic": "music"}])
    with pytest.raises(GlueRunnerError, match=r"unknown.parquet:1: label 'music' is not among"):
        splits_of(train, dev)


@pytest.mark.parametrize("name, content, message", [
    ("x.csv.gz", b"headline,topic\n", r"x.csv.gz: not a complete gzip file"),  # plain text named .gz
    ("x.csv.gz", gzip.compress(b"headline,topic\n" + b"the cat,sports\n" * 50)[:-12],
     r"x.csv.gz: not a complete gzip file"),  # cut short
    ("x.parquet", b"headline,topic\nthe cat,sports\n", r"x.parquet: not a readable Parquet file"),
    ("x.parquet.gz", b"", r"'.parquet.gz'; .* Parquet compresses itself"),
    ("x.txt.gz", b"", r"unsupported file type '.txt.gz'"),
])
def test_a_damaged_or_unknown_file_is_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(GlueRunnerError, match=message):
        splits_of(path, path)


def test_a_gzip_file_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "latin.csv.gz"
    path.write_bytes(gzip.compress("headline,topic\nthe cat,sports\ncaf\xe9,sports\n".encode("latin-1")))
    with pytest.raises(GlueRunnerError, match=r"latin.csv.gz: not UTF-8 text \(line 3\)"):
        splits_of(path, path)


def test_a_run_trains_on_parquet_and_scores_a_gzip_csv(run_cli, tmp_path):
    train = write_as(tmp_path / "news.parquet", ROWS)
    dev = write_as(tmp_path / "dev.csv.gz", ROWS[:6])
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topic",
                   "--num-train-epochs", "1", "--batch-size", "8", "--output-dir", "run", data=False) == 0
    record = json.loads(Path("run/metrics.json").read_text())
    assert record["task"] == "news" and record["data"]["examples"] == {"train": 18, "validation": 6}
