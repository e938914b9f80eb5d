"""Your own classification data: multi-class and multi-label files, as flags or a task file of
your own, end to end with the tiny model (tests/conftest.py)."""

import csv
import json
import os
import random
import re
from pathlib import Path

import pytest

from glue_runner import data
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]
TOPICS = {"sports": "cat", "politics": "dog", "science": "car", "music": "tree", "films": "book"}


def news(path: Path, n: int = 40, topics=tuple(TOPICS), seed: int = 0) -> Path:
    """A multi-class CSV whose topic shows in a word of the text."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["headline", "topic"])
        for i in range(n):
            topic = topics[i % len(topics)]
            writer.writerow([f"the {rng.choice(['big', 'small'])} {TOPICS[topic]} was good", topic])
    return path


def tagged(path: Path, n: int = 40, seed: int = 0) -> Path:
    """A multi-label TSV: each row carries one to three topics, joined with '|'."""
    rng = random.Random(seed)
    lines = ["text\ttopics"]
    for _ in range(n):
        topics = rng.sample(sorted(TOPICS), rng.randint(1, 3))
        lines.append(" ".join(["the", *(TOPICS[t] for t in topics), "was", "nice"]) + "\t" + "|".join(topics))
    path.write_text("\n".join(lines) + "\n")
    return path


def record(folder: str) -> dict:
    return json.loads(Path(folder, "metrics.json").read_text())


def test_a_multi_class_csv_trains_and_scores_with_its_own_labels(run_cli, tmp_path):
    train, dev = news(tmp_path / "train.csv"), news(tmp_path / "dev.csv", 20, seed=1)
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topic", *FAST,
                   "--save-model", "--output-dir", "run", data=False) == 0
    r = record("run")
    assert r["task"] == data.safe_task_name(tmp_path.name)  # a file called train.csv: named after its folder
    assert set(r["metrics"]) == {"accuracy", "f1_macro", "combined_score"}
    assert sorted(r["details"]["per_label"]["validation"]) == sorted(TOPICS)
    matrix = r["details"]["confusion"]["validation"]
    assert len(matrix) == 5 and sum(map(sum, matrix)) == 20
    assert Path("run/confusion_validation.png").read_bytes()[:4] == b"\x89PNG"
    assert Path("run/confusion_validation.csv").read_text().splitlines()[0] == "true \\ predicted," + ",".join(
        sorted(TOPICS))
    saved = json.loads(Path("run/model/config.json").read_text())["id2label"]
    assert saved == {str(i): name for i, name in enumerate(sorted(TOPICS))}  # the training file's labels, sorted
    rows = list(csv.DictReader(open("run/predictions_validation.tsv"), delimiter="\t"))
    assert {row["label"] for row in rows} <= set(TOPICS) and len(rows) == 20


def test_the_label_order_does_not_depend_on_the_row_order(tmp_path):
    a = news(tmp_path / "a.csv")
    b = tmp_path / "b.csv"
    lines = a.read_text().splitlines()
    b.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    names = [data.task_for(RunConfig(model="m", train_file=f, validation_file=f, label_column="topic")).label_names
             for f in (a, b)]
    assert names[0] == names[1] == tuple(sorted(TOPICS))


def test_labels_seen_only_in_validation_are_an_error_naming_them(run_cli, tmp_path, capsys):
    train = news(tmp_path / "train.csv", topics=("sports", "politics"))
    dev = news(tmp_path / "dev.csv", topics=("sports", "science", "music"))
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topic",
                   data=False) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "labels 'science', 'music' (the first) are not among" in err
    assert "a label seen only in the validation split cannot be learned" in err


def test_a_multi_label_file_with_a_delimited_column(run_cli, tmp_path):
    train, dev = tagged(tmp_path / "train.tsv", 48), tagged(tmp_path / "dev.tsv", 24, seed=1)
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topics",
                   "--label-delimiter", "|", *FAST, "--output-dir", "run", data=False) == 0
    r = record("run")
    assert set(r["metrics"]) == {"f1_micro", "f1_macro", "subset_accuracy"}
    assert r["details"]["threshold"] == {"value": 0.5, "chosen_on": None}
    assert sorted(r["details"]["per_label"]["validation"]) == sorted(TOPICS)
    rows = list(csv.DictReader(open("run/predictions_validation.tsv"), delimiter="\t"))
    assert all(set(filter(None, row["label"].split("|"))) <= set(TOPICS) for row in rows)
    assert any("|" in row["label"] for row in rows)


def test_a_sweep_of_your_own_task_over_seeds_ends_well(run_cli, tmp_path, capsys):
    train = news(tmp_path / "train.csv")
    assert run_cli("--train-file", str(train), "--validation-file", str(train), "--label-column", "topic",
                   "--seeds", "1,2", *FAST, data=False) == 0  # no GLUE leaderboard to show, and no error for it
    assert len(list(Path("results/runs").rglob("metrics.json"))) == 2


def test_a_sweep_of_glue_tasks_on_your_own_files_ends_well(run_cli, tmp_path):
    rows = "sentence,label\n" + "".join(f"film {i},{i % 2}\n" for i in range(16))
    (tmp_path / "own.csv").write_text(rows)
    assert run_cli("--task", "cola,sst2", "--train-file", str(tmp_path / "own.csv"), "--validation-file",
                   str(tmp_path / "own.csv"), *FAST, data=False) == 0  # own data: no GLUE leaderboard, no error
    assert len(list(Path("results/runs").rglob("metrics.json"))) == 2


def test_a_multi_label_threshold_chosen_on_the_dev_set_is_recorded(run_cli, tmp_path):
    train, dev = tagged(tmp_path / "train.tsv", 48), tagged(tmp_path / "dev.tsv", 24, seed=1)
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topics",
                   "--label-delimiter", "|", *FAST, "--tune-threshold", "--output-dir", "run", data=False) == 0
    threshold = record("run")["details"]["threshold"]
    assert threshold["chosen_on"] == "validation" and 0 < threshold["value"] < 1


def test_a_multi_label_file_with_one_column_per_label(run_cli, tmp_path):
    rng = random.Random(0)
    lines = ["comment,toxic,funny"]
    for i in range(40):
        toxic, funny = rng.random() < 0.5, rng.random() < 0.5
        lines.append(f"the {'bad' if toxic else 'good'} {'cat' if funny else 'dog'},{int(toxic)},{int(funny)}")
    own = tmp_path / "comments.csv"
    own.write_text("\n".join(lines) + "\n")
    assert run_cli("--train-file", str(own), "--validation-file", str(own), "--label-columns", "toxic,funny", *FAST,
                   "--output-dir", "run", data=False) == 0
    r = record("run")
    assert r["task"] == "comments" and set(r["details"]["per_label"]["validation"]) == {"toxic", "funny"}


def test_numbers_are_classes_unless_regression_is_asked_for(run_cli, tmp_path):
    own = tmp_path / "stars.csv"
    own.write_text("review,stars\n" + "".join(f"{'good' if i % 2 else 'bad'} film,{i % 5 + 1}\n" for i in range(30)))
    cfg = RunConfig(model="m", train_file=own, validation_file=own, label_column="stars")
    assert data.task_for(cfg).label_names == ("1", "2", "3", "4", "5")
    assert run_cli("--train-file", str(own), "--validation-file", str(own), "--label-column", "stars",
                   "--problem-type", "regression", *FAST, "--output-dir", "run", data=False) == 0
    assert set(record("run")["metrics"]) == {"pearson", "spearmanr", "combined_score"}


def test_two_text_columns_make_a_pair_and_more_need_naming(tmp_path):
    own = tmp_path / "pairs.csv"
    own.write_text("question,answer,note,label\nwhy,because,x,yes\nhow,so,y,no\n")
    with pytest.raises(GlueRunnerError, match="3 columns could hold the text .* name the text column with --text-columns"):
        data.task_for(RunConfig(model="m", train_file=own, validation_file=own))
    task = data.task_for(RunConfig(model="m", train_file=own, validation_file=own, text_columns=("question", "answer")))
    assert task.text_fields == ("sentence1", "sentence2") and task.columns["sentence2"] == "answer"
    assert task.label_names == ("no", "yes")


def test_label_flags_with_a_glue_task_are_refused(run_cli, capsys):
    assert run_cli("--task", "sst2", "--label-delimiter", ",") == 2
    assert "--label-delimiter describe your own data's labels, but sst2 has GLUE's" in capsys.readouterr().err


def goemotions_like(folder: Path) -> Path:
    """A task file for headerless, unquoted TSV files with label ids in one column, as GoEmotions ships."""
    folder.mkdir()
    rows = ['"quoted" good cat\t0,2\tid1', "sad dog\t1\tid2", "good dog and sad cat\t0,1\tid3", 'he said "yes\t2\tid4']
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text("\n".join(rows * 6) + "\n")
    (folder / "emotions.yaml").write_text("""\
name: emotions
text_fields: [text]
problem_type: multi_label
label_names: [joy, sadness, surprise]
label_delimiter: ","
splits:
  train: {file: train.tsv}
  validation: {file: dev.tsv}
columns: {text: 0, label: 1}   # positions: the files have no header
quoting: none                  # raw text: a quote is part of the comment
recipe: {learning_rate: 1.0e-3, num_train_epochs: 1, batch_size: 8}
""")
    return folder / "emotions.yaml"


def test_a_task_file_of_your_own(run_cli, tmp_path):
    task_file = goemotions_like(tmp_path / "emotions")
    task = data.task_for(RunConfig(task=str(task_file), model="m"))
    assert task.own and task.metrics == ("f1_micro", "f1_macro", "subset_accuracy") and task.recipe["batch_size"] == 8
    splits = data.load_splits(task, RunConfig(task=str(task_file), model="m"), log=lambda *a: None)
    assert splits["train"].dataset[0]["text"] == '"quoted" good cat'  # quotes kept as text
    assert splits["train"].dataset[0]["label"] == [1.0, 0.0, 1.0]  # ids 0 and 2
    assert run_cli("--task", str(task_file), "--output-dir", "run", data=False) == 0
    r = record("run")
    assert r["task"] == "emotions" and r["config"]["learning_rate"] == 1e-3
    assert r["identity"]["task"] == str(task_file.resolve())


def test_a_task_file_may_not_take_a_glue_name(tmp_path):
    task_file = goemotions_like(tmp_path / "emotions")
    task_file.write_text(task_file.read_text().replace("name: emotions", "name: cola"))
    with pytest.raises(GlueRunnerError, match="names its task 'cola', which is a GLUE task's name"):
        data.task_for(RunConfig(task=str(task_file), model="m"))


def test_own_data_runs_stay_out_of_the_glue_leaderboard(run_cli, tmp_path):
    from glue_runner.cli import main

    train = news(tmp_path / "train.csv")
    assert run_cli("--train-file", str(train), "--validation-file", str(train), "--label-column", "topic", *FAST,
                   data=False) == 0
    assert run_cli("--task", "rte", *FAST) == 0
    assert main(["leaderboard"]) == 0
    md = Path("results/leaderboard.md").read_text()
    assert "1 run(s) on your own data or tasks are not GLUE scores" in md


def test_goemotions_as_a_task_file(run_cli, shared_goemotions, tmp_path):
    """The real multi-label data: 28 labels as ids, raw TSV without a header."""
    names = (shared_goemotions / "labels.txt").read_text().split()
    task_file = tmp_path / "goemotions.yaml"
    task_file.write_text(f"""\
name: goemotions
text_fields: [text]
problem_type: multi_label
label_names: [{', '.join(names)}]
label_delimiter: ","
splits:
  train: {{file: {shared_goemotions / 'train.tsv'}}}
  validation: {{file: {shared_goemotions / 'dev.tsv'}}}
columns: {{text: 0, label: 1}}
quoting: none
""")
    task = data.task_for(RunConfig(task=str(task_file), model="m"))
    splits = data.load_splits(task, RunConfig(task=str(task_file), model="m"), log=lambda *a: None)
    assert (len(splits["train"].dataset), len(splits["validation"].dataset)) == (43410, 5426)
    assert run_cli("--task", str(task_file), *FAST, "--max-train-samples", "64", "--max-eval-samples", "64",
                   "--output-dir", "run", data=False) == 0
    assert len(record("run")["details"]["per_label"]["validation"]) == 28


# ---- the frozen-encoder probe --------------------------------------------------

def test_a_probe_trains_only_a_head_on_cached_features(run_cli, tmp_path, monkeypatch):
    from glue_runner import probe, run

    monkeypatch.setattr(run, "train", lambda *a, **k: pytest.fail("a probe does not fine-tune"))
    computed = []
    real = probe.predict
    monkeypatch.setattr(probe, "predict", lambda *a, **k: computed.append(1) or real(*a, **k))
    for task in ("sst2", "stsb", "mnli"):
        assert run_cli("--task", task, "--probe", "--output-dir", f"probe-{task}") == 0
    assert set(record("probe-sst2")["metrics"]) == {"accuracy"}
    assert set(record("probe-stsb")["metrics"]) == {"pearson", "spearmanr", "combined_score"}
    assert set(record("probe-mnli")["metrics"]) == {"accuracy", "accuracy_mm"}
    assert record("probe-sst2")["identity"]["probe"] is True and record("probe-sst2")["train"]["samples"] == 48
    assert record("probe-sst2")["train"]["trained_parameters"] == 64 + 1  # one logistic regression on 2 x 32 features
    n = len(computed)
    assert run_cli("--task", "sst2", "--probe", "--seed", "7", "--output-dir", "again") == 0
    assert len(computed) == n  # the features of both splits came from the cache
    assert record("again")["metrics"] == record("probe-sst2")["metrics"]  # a probe has no seed-to-seed spread


def test_the_frozen_encoder_does_not_change(tiny_bert, glue_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from glue_runner import probe
    from glue_runner.train import Runtime

    task = data.get_task("rte")
    cfg = RunConfig(task="rte", model=str(tiny_bert), data_dir=glue_dir, batch_size=8).resolved({})
    splits = data.load_splits(task, cfg, log=lambda *a: None, with_test=False)
    tokenized = data.tokenize(splits, task, AutoTokenizer.from_pretrained(tiny_bert), 128, tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    class Bar:
        def scoring(self, split):
            return None

    outputs, stats = probe.run(model, task, splits, tokenized, cfg, Runtime(torch.device("cpu")), 0, tmp_path, Bar())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert outputs("validation").shape == (24, 2) and stats.samples == 48
    x = probe.features(model, tokenized["validation"], "validation", cfg, Runtime(torch.device("cpu")), 0, tmp_path)
    assert x.shape == (24, 2 * model.config.hidden_size)


def test_probe_and_fine_tuned_rows_sit_side_by_side(run_cli):
    from glue_runner.cli import main

    assert run_cli("--task", "rte", *FAST) == 0
    assert run_cli("--task", "rte", "--batch-size", "8", "--probe") == 0  # the settings the head ignores are refused
    assert main(["leaderboard"]) == 0
    rows = [line.split("|")[1].strip() for line in Path("results/leaderboard.md").read_text().splitlines()
            if line.startswith("| tiny-bert")]
    assert sorted(rows) == ["tiny-bert (learning_rate=0.001, num_train_epochs=1.0)",
                            "tiny-bert (learning_rate=recipe, num_train_epochs=recipe, probe)"]
    assert "| probe" in Path("results/runs.md").read_text()  # runs.md says which run is a probe (first among its notes)


def test_a_probe_of_your_own_multi_label_data(run_cli, tmp_path):
    train, dev = tagged(tmp_path / "train.tsv", 48), tagged(tmp_path / "dev.tsv", 24, seed=1)
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topics",
                   "--label-delimiter", "|", "--probe", "--output-dir", "run", data=False) == 0
    assert set(record("run")["metrics"]) == {"f1_micro", "f1_macro", "subset_accuracy"}


def test_a_probe_has_no_ax(run_cli, capsys):
    assert run_cli("--task", "mnli,ax", "--probe") == 2
    assert "--probe trains a head for each task on its own training data, and AX has none" in capsys.readouterr().err


def test_a_model_card_for_your_own_task_file_names_its_files(run_cli, tmp_path):
    from huggingface_hub import ModelCard

    task_file = goemotions_like(tmp_path / "emotions")
    assert run_cli("--task", str(task_file), "--output-dir", "run", "--save-model", data=False) == 0
    card = ModelCard.load(Path("run/model/README.md"))
    assert card.data.datasets is None  # no Hub data set: not nyu-mll/glue, not an empty name
    assert {(r.dataset_type, r.dataset_name) for r in card.data.eval_results} == {("csv", "dev.tsv")}
    assert "own data (train `train.tsv`, validation `dev.tsv`) for the task `emotions`" in card.text
    assert "GLUE" not in card.text and "--task emotions.yaml" in card.text  # files by name only


def test_a_saved_model_with_capital_label_names_keeps_its_order(run_cli, tmp_path, capsys):
    """Reloaded on its own data, a model's head is read in its own order, whatever the case of the
    label names (their case once made them all look new, and the head was read in the wrong order)."""
    upper = {t: t.capitalize() for t in TOPICS}
    train, dev = (news(tmp_path / name, n, seed=seed) for name, n, seed in (("t.csv", 40, 0), ("d.csv", 20, 1)))
    for path in (train, dev):
        path.write_text("".join(upper.get(w, w) for w in re.split(r"(\w+)", path.read_text())))
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topic", *FAST,
                   "--num-train-epochs", "3", "--save-model", "--output-dir", "run", data=False) == 0
    trained = record("run")["metrics"]["accuracy"]
    # the same model, its head's outputs permuted: translated back by name, it scores the same
    config = json.loads(Path("run/model/config.json").read_text())
    config["id2label"] = {str(4 - int(i)): name for i, name in config["id2label"].items()}
    config["label2id"] = {name: int(i) for i, name in config["id2label"].items()}
    import safetensors.torch

    weights = safetensors.torch.load_file("run/model/model.safetensors")
    for key in ("classifier.weight", "classifier.bias"):
        weights[key] = weights[key].flip(0).contiguous()
    safetensors.torch.save_file(weights, "run/model/model.safetensors", metadata={"format": "pt"})
    Path("run/model/config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topic",
                   "--num-train-epochs", "0", "--output-dir", "again", data=False, model=False,
                   *["--model", "run/model"]) == 0
    assert "already fine-tuned on these labels; using its label order" in capsys.readouterr().err
    assert record("again")["metrics"]["accuracy"] == trained


def test_a_multi_label_head_trained_further_on_classes_gets_their_loss(run_cli, tmp_path):
    train = tagged(tmp_path / "tagged.tsv", 48)
    assert run_cli("--train-file", str(train), "--validation-file", str(train), "--label-column", "topics",
                   "--label-delimiter", "|", *FAST, "--save-model", "--output-dir", "multi", data=False) == 0
    news_train = news(tmp_path / "news.csv")
    assert run_cli("--train-file", str(news_train), "--validation-file", str(news_train), "--label-column", "topic",
                   *FAST, "--output-dir", "single", data=False, model=False, *["--model", "multi/model"]) == 0
    assert set(record("single")["metrics"]) == {"accuracy", "f1_macro", "combined_score"}


def test_a_saved_multi_label_model_keeps_its_threshold(run_cli, tmp_path, capsys):
    train, dev = tagged(tmp_path / "train.tsv", 48), tagged(tmp_path / "dev.tsv", 24, seed=1)
    args = ["--train-file", str(train), "--validation-file", str(dev), "--label-column", "topics",
            "--label-delimiter", "|"]
    assert run_cli(*args, *FAST, "--threshold", "0.3", "--save-model", "--output-dir", "run", data=False) == 0
    assert "multi-label threshold 0.3" in capsys.readouterr().err
    assert json.loads(Path("run/model/config.json").read_text())["multi_label_threshold"] == 0.3
    assert "| multi-label threshold | 0.3 |" in Path("run/model/README.md").read_text()
    assert run_cli(*args, "--num-train-epochs", "0", "--output-dir", "again", data=False, model=False,
                   *["--model", "run/model"]) == 0
    assert "saved with the multi-label threshold 0.3; this run uses 0.5 (pass --threshold 0.3" in capsys.readouterr().err


def test_the_same_file_read_with_other_labels_is_tokenized_again(tiny_bert, tmp_path):
    """The tokenization cache is keyed on how a file is read: another label column, or scores where
    there were classes, never get the labels of an earlier reading of the same file."""
    from transformers import AutoTokenizer

    rows = ["text,topic,stars"] + [f"the {w} film {i},{w},{1 + i % 5}" for i in range(10) for w in ("cat", "dog")]
    (tmp_path / "films.csv").write_text("\n".join(rows) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)

    def labels(**settings):
        cfg = RunConfig(model="m", train_file=tmp_path / "films.csv", validation_file=tmp_path / "films.csv",
                        text_columns=("text",), **settings)
        task = data.task_for(cfg)
        tokenized = data.tokenize(data.load_splits(task, cfg, log=lambda *a: None), task, tokenizer, 32,
                                  tmp_path / "cache")
        return tokenized["train"]["label"]

    assert labels(label_column="topic")[:4] == [0, 1, 0, 1]  # cat, dog
    assert labels(label_column="stars")[:4] == [0, 0, 1, 1]  # stars 1, 1, 2, 2 as classes
    assert labels(label_column="stars", problem_type="regression")[:4] == [1.0, 1.0, 2.0, 2.0]  # the scores


def test_a_label_written_as_a_digit_is_a_name_not_a_position(run_cli, tmp_path, capsys):
    """Labels 0, 2 and 5 from the training file: a '1' in validation is a label never trained on,
    not the second of them."""
    (tmp_path / "t.csv").write_text("text,grade\n" + "".join(f"essay {i},{(0, 2, 5)[i % 3]}\n" for i in range(12)))
    (tmp_path / "d.csv").write_text("text,grade\nessay a,1\nessay b,2\n")
    assert run_cli("--train-file", str(tmp_path / "t.csv"), "--validation-file", str(tmp_path / "d.csv"),
                   "--label-column", "grade", *FAST, data=False) == 2
    assert "label '1' is not among t's labels (0=0, 1=2, 2=5)" in capsys.readouterr().err


def test_labels_that_look_like_lists_ask_for_a_delimiter(run_cli, tmp_path, capsys):
    train = tagged(tmp_path / "tagged.tsv", 48)
    args = ["--train-file", str(train), "--validation-file", str(train), "--label-column", "topics"]
    assert run_cli(*args, *FAST, data=False) == 2
    assert 'look like lists; for multi-label data pass --label-delimiter "|"' in capsys.readouterr().err
    assert run_cli(*args, "--problem-type", "single_label", *FAST, data=False) == 0  # each combination a class


def test_a_text_column_given_as_the_labels_is_said_to_be_one(run_cli, tmp_path, capsys):
    (tmp_path / "t.csv").write_text("text,topic\n" + "".join(f"review number {i},a\n" for i in range(300)))
    assert run_cli("--train-file", str(tmp_path / "t.csv"), "--validation-file", str(tmp_path / "t.csv"),
                   "--text-columns", "text", "--label-column", "text", *FAST, data=False) == 2
    err = capsys.readouterr().err
    assert "holds 300 different values in 300 rows, too many to be classes" in err and len(err) < 600


def test_a_label_never_in_the_training_data_is_said(run_cli, tmp_path, capsys):
    lines = ["comment,toxic,funny"] + [f"comment {i},{i % 2},0" for i in range(16)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    assert run_cli("--train-file", str(tmp_path / "t.csv"), "--validation-file", str(tmp_path / "t.csv"),
                   "--label-columns", "toxic,funny", *FAST, data=False) == 0
    assert "label(s) 'funny' never occur in the training data" in capsys.readouterr().err


def test_a_file_named_like_a_glue_task_does_not_take_its_name(run_cli, tmp_path):
    train = news(tmp_path / "sst2.csv")
    assert run_cli("--train-file", str(train), "--validation-file", str(train), "--label-column", "topic", *FAST,
                   "--output-dir", "run", data=False) == 0
    assert record("run")["task"] == "sst2_own"


def test_an_own_task_is_named_by_its_file_or_by_its_folder(run_cli, tmp_path, monkeypatch):
    (tmp_path / "news").mkdir()
    news(tmp_path / "news" / "train.csv")
    monkeypatch.chdir(tmp_path / "news")
    assert run_cli("--train-file", "train.csv", "--validation-file", "train.csv", "--label-column", "topic", *FAST,
                   "--output-dir", "../run", data=False) == 0  # "train.csv" alone: its folder names it
    assert record("../run")["task"] == "news"


def test_the_leaderboard_of_own_data_runs_only_points_to_runs_md(run_cli, tmp_path, capsys):
    from glue_runner.cli import main

    train = news(tmp_path / "news.csv")
    assert run_cli("--train-file", str(train), "--validation-file", str(train), "--label-column", "topic", *FAST,
                   data=False) == 0
    capsys.readouterr()
    assert main(["leaderboard"]) == 2
    assert "1 finished run(s) under results are on your own data or tasks" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--label-delimiter", "|", "--problem-type", "single_label"], "--label-delimiter describe multi-label data"),
    (["--label-delimiter", "|", "--problem-type", "regression"], "but --problem-type is regression"),
    (["--label-columns", "a,b", "--label-column", "topic"], "give one of them"),
])
def test_label_flags_that_contradict_each_other_are_refused(run_cli, tmp_path, capsys, flags, message):
    train = news(tmp_path / "news.csv")
    assert run_cli("--train-file", str(train), "--validation-file", str(train), *flags, data=False) == 2
    assert message in capsys.readouterr().err


def test_an_empty_label_is_an_error_not_a_class(run_cli, tmp_path, capsys):
    (tmp_path / "t.csv").write_text("text,topic\nhello,a\nworld,\nfoo,a\nbar,b\n")
    assert run_cli("--train-file", str(tmp_path / "t.csv"), "--validation-file", str(tmp_path / "t.csv"),
                   "--label-column", "topic", *FAST, data=False) == 2
    assert "t.csv:3: the label (column 'topic') is empty" in capsys.readouterr().err


def test_an_unclosed_quote_is_named_not_skipped_with_the_rest_of_the_file(run_cli, tmp_path, capsys):
    lines = ["sentence,label", "hello,1", '"unterminated,0'] + [f"row {i},{i % 2}" for i in range(200)]
    (tmp_path / "q.csv").write_text("\n".join(lines) + "\n")
    assert run_cli("--task", "sst2", "--train-file", str(tmp_path / "q.csv"), "--validation-file",
                   str(tmp_path / "q.csv"), data=False) == 2
    assert "q.csv:3: a quoted field runs over 201 lines" in capsys.readouterr().err


def tagged_jsonl(path: Path, n: int = 40, seed: int = 0, as_text: bool = False) -> Path:
    """tagged()'s rows as JSON lines whose label is a JSON list (as_text: the list's text in a CSV, as pandas
    writes a column of lists: ['sports', 'politics'])."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        topics = rng.sample(sorted(TOPICS), rng.randint(1, 3))
        rows.append({"text": " ".join(["the", *(TOPICS[t] for t in topics), "was", "nice"]), "topics": topics})
    if as_text:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "topics"])
            writer.writerows([r["text"], str(r["topics"])] for r in rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("suffix, delimiter", [(".jsonl", []), (".jsonl", ["--label-delimiter", ","]),
                                               (".csv", [])], ids=["json-list", "json-list-with-delimiter", "pandas-csv"])
def test_labels_given_as_lists_are_label_sets(run_cli, tmp_path, suffix, delimiter):
    train = tagged_jsonl(tmp_path / f"train{suffix}", as_text=suffix == ".csv")
    dev = tagged_jsonl(tmp_path / f"dev{suffix}", 16, seed=1, as_text=suffix == ".csv")
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topics", *delimiter,
                   *FAST, "--output-dir", "run", data=False) == 0
    r = record("run")
    assert r["config"]["problem_type"] is None and set(r["metrics"]) >= {"f1_micro", "f1_macro", "subset_accuracy"}
    assert sorted(r["details"]["per_label"]["validation"]) == sorted(TOPICS)  # names, without brackets or quotes


def test_lists_with_a_single_label_problem_type_are_refused(run_cli, tmp_path, capsys):
    train, dev = tagged_jsonl(tmp_path / "train.jsonl"), tagged_jsonl(tmp_path / "dev.jsonl", 16, seed=1)
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), "--label-column", "topics",
                   "--problem-type", "single_label", *FAST, data=False) == 2
    assert "its labels are lists (label sets), which is multi-label data" in " ".join(capsys.readouterr().err.split())
