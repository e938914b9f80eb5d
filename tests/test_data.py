import json

import pytest
from fixtures import ROWS, SHORT_ROWS

from glue_runner import data
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError
from glue_runner.tasks import get_task, glue_tasks

GLUE_ORDER = [t.name for t in glue_tasks()]

FOLDER = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP", "mnli": "MNLI",
          "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI", "ax": "diagnostic"}


def load(task_name, **kw):
    task = get_task(task_name)
    return task, data.load_splits(task, RunConfig(task=task_name, model="x", **kw), log=lambda *a: None)


@pytest.mark.parametrize("name", GLUE_ORDER)
def test_every_task_reads_its_glue_files(glue_dir, name):
    task, splits = load(name, data_dir=glue_dir)
    assert set(splits) == set(task.splits)
    for split, filename in ((s, spec.file) for s, spec in task.splits.items()):
        ds = splits[split].dataset
        assert len(ds) == ROWS[(FOLDER[name], filename)]
        assert splits[split].skipped == SHORT_ROWS.get((FOLDER[name], filename), 0)
        assert set(task.text_fields) <= set(ds.column_names)
        assert all(isinstance(t, str) and t for t in ds[task.text_fields[0]])
        if split.startswith("test"):
            assert "label" not in ds.column_names
            assert ds["idx"] == sorted(ds["idx"])  # the file's own index column
        else:
            labels = ds["label"]
            if task.regression:
                assert all(0.0 <= x <= 5.0 for x in labels)
            else:
                assert set(labels) == set(range(task.num_labels))  # every label appears in the fixtures


def test_quirks_bom_quotes_and_string_labels(glue_dir):
    _, mrpc = load("mrpc", data_dir=glue_dir)  # header starts with a BOM: 'Quality' must still be found
    assert len(mrpc["train"].dataset) == ROWS[("MRPC", "train.tsv")]
    _, cola = load("cola", data_dir=glue_dir)
    assert any(s.startswith('"') for s in cola["train"].dataset["sentence"])  # read with no quote character
    _, mnli = load("mnli", data_dir=glue_dir)
    assert mnli["validation_mismatched"].dataset.features["label"].names == ["entailment", "neutral", "contradiction"]


def test_max_samples_take_the_first_examples(glue_dir):
    _, splits = load("sst2", data_dir=glue_dir, max_train_samples=5, max_eval_samples=3, max_predict_samples=2)
    _, full = load("sst2", data_dir=glue_dir)
    assert splits["train"].dataset["sentence"] == full["train"].dataset["sentence"][:5]
    assert (len(splits["validation"].dataset), len(splits["test"].dataset)) == (3, 2)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(GlueRunnerError, match=r"CoLA does not exist; --data-dir must hold the GLUE folders"):
        load("cola", data_dir=tmp_path)


def test_missing_split_file_names_the_file(tmp_path, glue_dir):
    write(tmp_path / "RTE" / "train.tsv", (glue_dir / "RTE" / "train.tsv").read_text())
    with pytest.raises(GlueRunnerError, match=r"RTE/dev.tsv is missing"):
        load("rte", data_dir=tmp_path)


def test_wrong_columns_name_the_file_and_what_was_found(tmp_path):
    write(tmp_path / "SST-2" / "train.tsv", "text\tlabel\nfine\t1\n")
    write(tmp_path / "SST-2" / "dev.tsv", "sentence\tlabel\nfine\t1\n")
    with pytest.raises(GlueRunnerError, match=r"train.tsv:1: missing column\(s\) 'sentence'; the header has 'text', 'label'"):
        load("sst2", data_dir=tmp_path)


def test_label_outside_the_label_set_names_file_and_line(tmp_path):
    write(tmp_path / "RTE" / "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n")
    write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    with pytest.raises(GlueRunnerError, match=r"train.tsv:3: label 'maybe' is not one of rte's labels"):
        load("rte", data_dir=tmp_path)


def test_regression_label_must_be_a_number(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    write(tmp_path / "STS-B" / "train.tsv", header + "0\tg\tf\ty\to\ts\ts\ta\tb\thigh\n")
    write(tmp_path / "STS-B" / "dev.tsv", header + "0\tg\tf\ty\to\ts\ts\ta\tb\t1.5\n")
    with pytest.raises(GlueRunnerError, match=r"train.tsv:2: label 'high' is not a number"):
        load("stsb", data_dir=tmp_path)


def test_empty_split_is_an_error(tmp_path):
    write(tmp_path / "SST-2" / "train.tsv", "sentence\tlabel\n")
    write(tmp_path / "SST-2" / "dev.tsv", "sentence\tlabel\nfine\t1\n")
    with pytest.raises(GlueRunnerError, match="train split has no usable rows"):
        load("sst2", data_dir=tmp_path)


def test_short_rows_are_skipped_and_reported(tmp_path):
    write(tmp_path / "QQP" / "train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
          "0\t1\t2\twhy\twhy\t1\n1\t3\t4\thow do\n5\tok\t0\n2\t5\t6\ta\tb\t0\n")
    write(tmp_path / "QQP" / "dev.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n0\t1\t2\ta\tb\t1\n")
    messages = []
    splits = data.load_splits(get_task("qqp"), RunConfig(task="qqp", model="x", data_dir=tmp_path), log=messages.append)
    assert len(splits["train"].dataset) == 2 and splits["train"].skipped == 2
    assert any("skipped 2 malformed row(s)" in m for m in messages)


def test_own_files_csv_tsv_and_jsonl(tmp_path):
    train = write(tmp_path / "train.csv", 'text,verdict\n"a, quoted ""good"" one",positive\nbad,0\n')
    dev = write(tmp_path / "dev.jsonl", json.dumps({"text": "good", "verdict": "positive"}) + "\n\n"
                + json.dumps({"text": "bad", "verdict": 0}) + "\n")
    test = write(tmp_path / "test.tsv", "text\nsomething\n")
    _, splits = load("sst2", train_file=train, validation_file=dev, test_file=test,
                     text_columns=("text",), label_column="verdict")
    assert splits["train"].dataset["sentence"] == ['a, quoted "good" one', "bad"]
    assert splits["train"].dataset["label"] == [1, 0]
    assert splits["validation"].dataset["label"] == [1, 0]
    assert splits["test"].dataset["idx"] == [0]


def test_own_files_default_to_the_tasks_column_names(tmp_path):
    train = write(tmp_path / "t.tsv", "sentence1\tsentence2\tlabel\na\tb\tentailment\nc\td\tnot_entailment\n")
    _, splits = load("rte", train_file=train, validation_file=train)
    assert splits["train"].dataset["label"] == [0, 1]


@pytest.mark.parametrize("content, message", [
    ('{"sentence": "a"}\n', r"x.jsonl:1: missing key\(s\) 'label'"),
    ('{"sentence": "a", "label": 1}\n[1, 2]\n', r"x.jsonl:2: not a JSON object"),
    ('{"sentence": "a", "label": 1\n', r"x.jsonl:1: not a JSON object"),
])
def test_bad_jsonl_names_the_line(tmp_path, content, message):
    path = write(tmp_path / "x.jsonl", content)
    with pytest.raises(GlueRunnerError, match=message):
        load("sst2", train_file=path, validation_file=path)


def test_own_files_errors(tmp_path):
    good = write(tmp_path / "good.csv", "sentence,label\na,1\n")
    with pytest.raises(GlueRunnerError, match="does not exist"):
        load("sst2", train_file=tmp_path / "nope.csv", validation_file=good)
    with pytest.raises(GlueRunnerError, match="unsupported file type '.txt'"):
        load("sst2", train_file=write(tmp_path / "a.txt", "x"), validation_file=good)
    with pytest.raises(GlueRunnerError, match="your own data needs --validation-file too"):
        load("sst2", train_file=good)
    with pytest.raises(GlueRunnerError, match="--text-columns names 1 column"):
        load("rte", train_file=good, validation_file=good, text_columns=("sentence",))


def test_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("sentence,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(GlueRunnerError, match="latin.csv: not UTF-8 text"):
        load("sst2", train_file=path, validation_file=path)


def test_hub_source_selects_the_task_columns(monkeypatch):
    import datasets

    def fake_load_dataset(path, name, cache_dir=None):
        assert (path, name) == ("nyu-mll/glue", "rte")
        row = {"sentence1": ["a", "c"], "sentence2": ["b", "d"], "label": [1, 0], "idx": [7, 8], "extra": ["x", "y"]}
        return datasets.DatasetDict({s: datasets.Dataset.from_dict(row) for s in ("train", "validation", "test")})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    _, splits = load("rte")
    assert splits["train"].dataset.column_names == ["idx", "sentence1", "sentence2", "label"]
    assert splits["test"].dataset.column_names == ["idx", "sentence1", "sentence2"]


def test_hub_failure_says_how_to_work_offline(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(GlueRunnerError, match="nyu-mll/glue/cola.*Couldn't reach the Hub\\); without internet, pass --data-dir"):
        load("cola")


def test_tokenize_pairs_get_segment_ids_and_are_cached(glue_dir, tiny_bert, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    task, splits = load("rte", data_dir=glue_dir)
    tokenized = data.tokenize(splits, task, tokenizer, 16, cache_dir=tmp_path)
    first = tokenized["train"][0]
    assert set(first) >= {"input_ids", "token_type_ids", "attention_mask", "label", "idx", "length"}
    assert first["token_type_ids"][0] == 0 and first["token_type_ids"][-1] == 1
    assert max(tokenized["train"]["length"]) <= 16
    cached = sorted(p.name for p in tmp_path.glob("rte-*.arrow"))
    assert len(cached) == len(splits)
    again = data.tokenize(load("rte", data_dir=glue_dir)[1], task, tokenizer, 16, cache_dir=tmp_path)
    assert again["train"]["input_ids"] == tokenized["train"]["input_ids"]
    assert sorted(p.name for p in tmp_path.glob("rte-*.arrow")) == cached  # reused, not rewritten
