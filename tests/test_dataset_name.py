"""--dataset-name, as run_glue.py's --dataset_name: a dataset of the Hugging Face Hub, or a folder in the Hub's
layout (README.md, data/<split>-*.parquet), made here in code so the suite runs offline. Its splits, its
ClassLabel names, a dev set held out where it has none, and the run's identity."""

import json
from pathlib import Path

import pytest

from glue_runner import data
from glue_runner.cli import main
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]
NAMES = ["negative", "neutral", "positive"]
WORDS = {"negative": "bad", "neutral": "old", "positive": "good"}


def hub_folder(root: Path, splits: dict[str, int], config: str | None = None, labels=None) -> Path:
    """A dataset folder as the Hub holds one: data/<split>-00000-of-00001.parquet (under <config>/ with a config)
    and a README.md whose YAML front matter names the configs; text and a ClassLabel label (or `labels`' feature)."""
    import datasets

    label = labels or datasets.ClassLabel(names=NAMES)
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"), "label": label})
    folder = root / (config or "data")
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in splits.items():
        rows = {"id": [f"{split}-{i}" for i in range(n)],
                "text": [f"the cat was {WORDS[NAMES[i % 3]]}" for i in range(n)],
                "label": [example(i, isinstance(labels, datasets.List)) for i in range(n)] if labels else
                         [i % 3 for i in range(n)]}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    configs = "" if not config else f"configs:\n- config_name: {config}\n  data_files:\n" + "".join(
        f"  - split: {split}\n    path: {config}/{split}-*\n" for split in splits)
    (root / "README.md").write_text(f"---\nlicense: mit\n{configs}---\n# a dataset made for the tests\n")
    return root


def example(i: int, lists: bool):
    """A label for the features other than ClassLabel that the tests give: a list (multi-label) or a name."""
    return [NAMES[i % 3]] + ([NAMES[(i + 1) % 3]] if i % 2 else []) if lists else NAMES[i % 3]


def task_of(**settings):
    return data.task_for(RunConfig(model="m", **settings))


def test_a_dataset_with_a_validation_split_trains_with_its_class_names(run_cli, tmp_path):
    folder = hub_folder(tmp_path / "reviews", {"train": 24, "validation": 9, "test": 6})
    assert run_cli("--dataset-name", str(folder), *FAST, "--save-model", "--do-predict", "--output-dir", "run",
                   data=False) == 0
    record = json.loads(Path("run/metrics.json").read_text())
    assert record["task"] == "reviews" and record["data"]["examples"] == {"train": 24, "validation": 9, "test": 6}
    assert record["data"]["source"]["train"] == f"{folder}[train]"
    assert record["identity"]["dataset_name"] == str(folder.resolve())
    assert json.loads(Path("run/model/config.json").read_text())["id2label"] == {"0": "negative", "1": "neutral",
                                                                                "2": "positive"}
    assert {row.split("\t")[1] for row in Path("run/predictions_validation.tsv").read_text().splitlines()[1:]} <= \
        set(NAMES)  # the labels by their names, not their positions
    card = Path("run/model/README.md").read_text()
    assert "fine-tuned from" in card and "the dataset `reviews`" in card and "datasets:" not in card  # a local folder
    # its model predicts new text from the dataset's text column
    Path("new.csv").write_text("text\nthe cat was good\n")
    assert main(["predict", "--model", "run", "--input", "new.csv"]) == 0
    assert Path("new.predictions.csv").read_text().splitlines()[0] == "text,prediction," + ",".join(
        f"prob_{name}" for name in NAMES)


def test_a_dataset_without_a_validation_split_says_how_to_hold_one_out(run_cli, tmp_path, capsys):
    folder = hub_folder(tmp_path / "news", {"train": 40, "test": 6})
    assert run_cli("--dataset-name", str(folder), *FAST, data=False) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{folder} has no 'validation' split (its splits: train, test); hold out part of the training split as " \
           "the dev set with --validation-split-percentage 10, or name the split to score with --validation-split" in err
    assert run_cli("--dataset-name", str(folder), "--validation-split-percentage", "25", *FAST, "--output-dir", "a",
                   data=False) == 0
    record = json.loads(Path("a/metrics.json").read_text())
    assert record["data"]["examples"] == {"train": 30, "validation": 10}
    held_out = Path("a/predictions_validation.tsv").read_text()
    # the same command is the same run; another share is another run, and each seed scores the same dev set
    assert run_cli("--dataset-name", str(folder), "--validation-split-percentage", "25", *FAST, "--output-dir", "a",
                   data=False) == 0
    assert "already done" in capsys.readouterr().err
    assert run_cli("--dataset-name", str(folder), "--validation-split-percentage", "25", "--seed", "7", *FAST,
                   "--output-dir", "b", data=False) == 0
    assert [r.split("\t")[0] for r in Path("b/predictions_validation.tsv").read_text().splitlines()] == \
        [r.split("\t")[0] for r in held_out.splitlines()]
    assert RunConfig(model="m", dataset_name=str(folder), validation_split_percentage=25).identity() != \
        RunConfig(model="m", dataset_name=str(folder), validation_split_percentage=50).identity()


def test_splits_and_configurations_are_named_by_flags(tmp_path):
    folder = hub_folder(tmp_path / "tweets", {"training": 12, "test": 6}, config="emotion")
    task = task_of(dataset_name=str(folder), dataset_config="emotion", train_split="training", validation_split="test")
    assert task.name == "tweets_emotion" and list(task.splits) == ["train", "validation"]
    assert task.label_names == tuple(NAMES) and task.columns["sentence"] == "text"  # the id column is no text
    with pytest.raises(GlueRunnerError, match=r"could not load the dataset .*tweets \(nope\) \(ValueError: .*'nope'"):
        task_of(dataset_name=str(folder), dataset_config="nope")
    with pytest.raises(GlueRunnerError, match=r"has no 'train' split \(its splits: training, test\); name the one to "
                                              "train on with --train-split"):
        task_of(dataset_name=str(folder), dataset_config="emotion")


def test_labels_without_a_classlabel_are_lists_or_names(tmp_path):
    import datasets

    lists = hub_folder(tmp_path / "tags", {"train": 12, "validation": 6}, labels=datasets.List(datasets.Value("string")))
    task = task_of(dataset_name=str(lists))
    assert task.multi_label and task.label_names == tuple(NAMES) and task.label_delimiter == "|"
    cfg = RunConfig(model="m", dataset_name=str(lists))
    train = data.load_splits(task, cfg, log=lambda *a, **k: None)["train"].dataset
    assert train["label"][1] == [0.0, 1.0, 1.0]  # neutral and positive
    words = hub_folder(tmp_path / "words", {"train": 12, "validation": 6}, labels=datasets.Value("string"))
    assert task_of(dataset_name=str(words), label_column="label", text_columns=("text",)).label_names == tuple(NAMES)


def test_the_hub_is_asked_through_datasets_load_dataset(tmp_path, monkeypatch):
    import datasets

    folder = hub_folder(tmp_path / "local", {"train": 12, "validation": 6})
    calls, real = [], datasets.load_dataset

    def load_dataset(name, config=None, **kwargs):
        calls.append((name, config, kwargs["revision"]))
        return real(str(folder), cache_dir=str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    task = task_of(dataset_name="someone/reviews", dataset_config="en", dataset_revision="v1.0")
    assert calls == [("someone/reviews", "en", "v1.0")] and task.name == "reviews_en"


def test_a_hub_dataset_that_is_not_there_offline_is_one_line(tmp_path):
    with pytest.raises(GlueRunnerError, match=r"could not load the dataset nobody/nothing \(.*\); without internet, "
                                              r"give a folder in the Hub's layout"):
        task_of(dataset_name="nobody/nothing", cache_dir=tmp_path)


@pytest.mark.parametrize("flags, message", [
    (["--dataset-config", "x"], "--dataset-config says how to read --dataset-name's splits, and no --dataset-name"),
    (["--validation-split-percentage", "10"], "no --dataset-name is given"),
    (["--dataset-name", "x", "--train-file", "t.csv"], "--dataset-name and --train-file each name the data"),
    (["--dataset-name", "x", "--validation-split", "dev", "--validation-split-percentage", "10"], "give one"),
    (["--dataset-name", "x", "--validation-split-percentage", "100"], "must be more than 0 and less than 100, not 100"),
    (["--dataset-name", "x", "--task", "sst2"], "--dataset-name reads a task of your own from the dataset"),
])
def test_dataset_flags_that_mean_nothing_are_refused(run_cli, capsys, flags, message):
    assert run_cli(*flags, data=False) == 2
    assert message in " ".join(capsys.readouterr().err.split())
