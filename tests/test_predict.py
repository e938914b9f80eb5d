"""glue-run predict, and the saved model as a standard one: a --save-model folder (or its run's folder)
predicts new CSV, TSV, JSON lines and Parquet files, one output row per input row; transformers'
pipeline loads the same folder and gives the run's own predictions. Models: the tiny BERT
(tests/conftest.py) fine-tuned once per module on small data made here, in float32 (--no-bf16), so the
run, predict and the pipeline compute alike on any CPU."""

import csv
import gzip
import json
import random
from pathlib import Path

import pytest

from glue_runner import predict
from glue_runner.cli import main

FAST = ["--num-train-epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3", "--no-bf16"]
TOPICS = {"sports": "cat", "politics": "dog", "science": "car"}
FILLER = "and the old tree was very quiet"


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_table(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t" if ".tsv" in path.suffixes else ","))


def read_output(path: Path) -> list[dict]:
    """An output file's rows as dicts of text, whatever its format."""
    if path.suffix == ".parquet":
        import pyarrow.parquet

        return [{k: "" if v is None else str(v) for k, v in row.items()}
                for row in pyarrow.parquet.read_table(path).to_pylist()]
    if path.suffix == ".jsonl":
        return [{k: "" if v is None else str(v) for k, v in json.loads(line).items()} for line in path.open()]
    return read_table(path)


def news_rows(n: int, seed: int) -> list[list]:
    """[id, headline, topic]: the topic shows in the headline's first words; one in three runs on past 16 tokens."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = list(TOPICS)[i % 3]
        text = f"the {rng.choice(['big', 'small'])} {TOPICS[topic]} was {rng.choice(['good', 'bad'])}"
        rows.append([i, text + (" " + FILLER) * (i % 3) * 2, topic])
    return rows


def run_predictions(run: Path, split: str = "validation") -> list[str]:
    return [row["prediction"] for row in read_table(run / f"predictions_{split}.tsv")]


@pytest.fixture(scope="module")
def train(tmp_path_factory, tiny_bert):
    root = tmp_path_factory.mktemp("predict")

    def train(name: str, *args: str) -> Path:
        out = root / name
        assert main([*args, "--model", str(tiny_bert), "--output-dir", str(out), "--results-dir", str(root / "results"),
                     "--cache-dir", str(root / "cache"), "--save-model", *FAST]) == 0
        return out
    return train


@pytest.fixture(scope="module")
def news(train, tmp_path_factory):
    """A 3-class model of headlines, read at most 16 tokens (a third of the headlines are longer)."""
    folder = tmp_path_factory.mktemp("news")
    header = ["id", "headline", "topic"]
    dev = write_csv(folder / "dev.csv", header, news_rows(24, seed=1))
    run = train("news", "--train-file", str(write_csv(folder / "train.csv", header, news_rows(60, seed=0))),
                "--validation-file", str(dev), "--label-column", "topic", "--max-seq-length", "16")
    return run, dev


@pytest.fixture(scope="module")
def rte(train, glue_dir):
    return train("rte", "--task", "rte", "--data-dir", str(glue_dir))


@pytest.fixture(scope="module")
def tagged(train, tmp_path_factory):
    """A multi-label model (topics joined by '|'), saved with the threshold 0.3."""
    folder = tmp_path_factory.mktemp("tagged")
    rng = random.Random(0)

    def rows(n):
        out = []
        for _ in range(n):
            topics = rng.sample(sorted(TOPICS), rng.randint(1, 2))
            out.append([" ".join(["the", *(TOPICS[t] for t in topics), "was", "nice"]), "|".join(topics)])
        return out
    dev = write_csv(folder / "dev.tsv", ["text", "topics"], rows(24), "\t")
    run = train("tagged", "--train-file", str(write_csv(folder / "train.tsv", ["text", "topics"], rows(60), "\t")),
                "--validation-file", str(dev), "--label-column", "topics", "--label-delimiter", "|",
                "--threshold", "0.3")
    return run, dev


@pytest.fixture(scope="module")
def scores(train, tmp_path_factory):
    """A regression model that keeps a text's last 12 tokens (--truncation tail), where its score shows."""
    folder = tmp_path_factory.mktemp("scores")
    rng = random.Random(0)

    def rows(n):
        return [[f"{FILLER} {FILLER} the {rng.choice(['cat', 'dog'])} was {word}", score]
                for word, score in (rng.choice([("good", "4.5"), ("bad", "0.5")]) for _ in range(n))]
    dev = write_csv(folder / "dev.csv", ["review", "stars"], rows(16))
    run = train("scores", "--train-file", str(write_csv(folder / "train.csv", ["review", "stars"], rows(48))),
                "--validation-file", str(dev), "--label-column", "stars", "--problem-type", "regression",
                "--truncation", "tail", "--max-seq-length", "12")
    return run, dev


def glue_predict(*args: str) -> int:
    return main(["predict", *args])


# ---- predict --------------------------------------------------------------------------------------

def test_every_row_comes_out_in_order_with_its_columns_and_the_runs_predictions(news, tmp_path, capsys, monkeypatch):
    run, dev = news
    monkeypatch.setattr(predict, "CHUNK_ROWS", 5)  # several chunks, each sorted by length inside: order must hold
    rows = read_table(dev)
    source = write_csv(tmp_path / "new.csv", ["id", "headline", "source"],
                       [[r["id"], r["headline"], "web"] for r in rows] + [[99, "  ", "web"]])
    assert glue_predict("--model", str(run), "--input", str(source), "--no-bf16") == 0
    out = capsys.readouterr().err
    assert f"{run} is a run's folder: predicting with the model it saved, {run / 'model'}" in " ".join(out.split())
    assert "read 25 row(s)" in out and "1 with an empty text, written without a prediction" in out
    written = read_table(tmp_path / "new.predictions.csv")
    assert list(written[0]) == ["id", "headline", "source", "prediction", "prob_politics", "prob_science",
                                "prob_sports"]
    assert [r["id"] for r in written] == [r["id"] for r in rows] + ["99"]
    assert [r["headline"] for r in written[:-1]] == [r["headline"] for r in rows]
    assert [r["prediction"] for r in written[:-1]] == run_predictions(run)
    for r in written[:-1]:
        probabilities = [float(r[f"prob_{t}"]) for t in sorted(TOPICS)]
        assert abs(sum(probabilities) - 1) < 1e-5
        assert r["prediction"] == sorted(TOPICS)[probabilities.index(max(probabilities))]
    assert written[-1]["prediction"] == "" and written[-1]["prob_sports"] == ""


@pytest.mark.parametrize("name", ["new.tsv", "new.jsonl", "new.parquet", "new.csv.gz"])
def test_each_format_in_gives_the_same_predictions_out_in_its_format(news, tmp_path, name):
    import pyarrow
    import pyarrow.parquet

    run, dev = news
    rows = [{"id": int(r["id"]), "headline": r["headline"]} for r in read_table(dev)]
    source = tmp_path / name
    if name.endswith(".parquet"):
        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), source)
    elif name.endswith(".jsonl"):
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        sep = "\t" if ".tsv" in name else ","
        text = f"id{sep}headline\n" + "".join(f"{r['id']}{sep}{r['headline']}\n" for r in rows)
        source.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    assert glue_predict("--model", str(run / "model"), "--input", str(source), "--no-bf16") == 0
    target = source.with_name(name.replace("new.", "new.predictions."))
    written = read_output(target)
    assert [r["prediction"] for r in written] == run_predictions(run)
    assert [r["id"] for r in written] == [str(r["id"]) for r in rows]
    if name.endswith(".parquet"):  # the input's columns keep their types, the probabilities are numbers
        schema = pyarrow.parquet.read_schema(target)
        assert str(schema.field("id").type) == "int64" and str(schema.field("prob_sports").type) == "double"


def test_a_glue_pair_model_predicts_glues_own_tsv_and_the_hubs_columns(rte, glue_dir, tmp_path):
    # GLUE's RTE dev.tsv: raw text (quotes are text), columns sentence1/sentence2 as on the Hub
    assert glue_predict("--model", str(rte), "--input", str(glue_dir / "RTE" / "dev.tsv"), "--output",
                        str(tmp_path / "dev.tsv"), "--no-bf16") == 0
    assert [r["prediction"] for r in read_table(tmp_path / "dev.tsv")] == run_predictions(rte)
    # the same pairs as a CSV (its quotes are quoting, not text), with the Hub's names or others said by a flag
    pairs = [[r["sentence1"], r["sentence2"]] for r in read_table(tmp_path / "dev.tsv")]
    assert any('"' in a for a, _ in pairs)
    for header, flags in ((["sentence1", "sentence2"], []), (["premise", "hypothesis"],
                                                             ["--text-columns", "premise,hypothesis"])):
        source = write_csv(tmp_path / f"{header[0]}.csv", header, pairs)
        assert glue_predict("--model", str(rte), "--input", str(source), *flags, "--no-bf16") == 0
        assert [r["prediction"] for r in read_table(source.with_suffix(".predictions.csv"))] == run_predictions(rte)


def test_a_multi_label_model_predicts_the_labels_above_its_saved_threshold(tagged, tmp_path, capsys):
    run, dev = tagged
    assert json.loads((run / "model" / "config.json").read_text())["multi_label_threshold"] == 0.3
    assert glue_predict("--model", str(run), "--input", str(dev), "--output", str(tmp_path / "out.jsonl"),
                        "--no-bf16") == 0
    assert "(threshold 0.3)" in capsys.readouterr().err
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").open()]
    assert [r["prediction"] for r in written] == run_predictions(run)
    for r in written:
        above = [t for t in sorted(TOPICS) if r[f"prob_{t}"] > 0.3]
        assert r["prediction"] == "|".join(above) and r["topics"]  # the input's own labels are kept


def test_a_regression_model_predicts_the_runs_scores(scores, tmp_path):
    run, dev = scores
    assert glue_predict("--model", str(run), "--input", str(dev), "--output", str(tmp_path / "out.parquet"),
                        "--no-bf16") == 0
    written = read_output(tmp_path / "out.parquet")
    assert list(written[0]) == ["review", "stars", "prediction"]
    assert [float(r["prediction"]) for r in written] == pytest.approx([float(p) for p in run_predictions(run)],
                                                                      abs=1e-5)


# ---- the saved model is a standard model -----------------------------------------------------------

def pipeline_of(folder: Path):
    import transformers

    return transformers.pipeline("text-classification", model=str(folder), truncation=True, device="cpu")


def test_pipeline_gives_the_runs_labels_and_predictions_cut_at_its_length(news, tmp_path):
    run, dev = news
    saved = json.loads((run / "model" / "tokenizer_config.json").read_text())
    assert saved["model_max_length"] == 16 and saved["truncation_side"] == "right"
    classify = pipeline_of(run / "model")
    texts = [r["headline"] for r in read_table(dev)]
    assert any(len(classify.tokenizer(t)["input_ids"]) > 16 for t in texts)  # the cut matters
    assert [p["label"] for p in classify(texts)] == run_predictions(run)
    # and glue-run predict's probabilities are the pipeline's
    assert glue_predict("--model", str(run), "--input", str(dev), "--output", str(tmp_path / "p.csv"), "--no-bf16") == 0
    for row, scored in zip(read_table(tmp_path / "p.csv"), classify(texts, top_k=None)):
        assert {s["label"]: s["score"] for s in scored} == pytest.approx(
            {t: float(row[f"prob_{t}"]) for t in TOPICS}, abs=2e-6)


def test_pipeline_predicts_pairs_as_the_glue_run_did(rte):
    classify = pipeline_of(rte / "model")
    pairs = [{"text": r["sentence1"], "text_pair": r["sentence2"]} for r in dev_pairs(rte)]
    assert [p["label"] for p in classify(pairs)] == run_predictions(rte)


def dev_pairs(run: Path) -> list[dict]:
    """The RTE dev pairs, in the run's order (its predictions file holds only their index)."""
    from glue_runner import data
    from glue_runner.config import RunConfig

    cfg = RunConfig.from_json(json.loads((run / "metrics.json").read_text())["config"])
    task = data.task_for(cfg)
    dataset = data.load_splits(task, cfg, with_test=False)["validation"].dataset
    return [{"sentence1": a, "sentence2": b} for a, b in zip(dataset["sentence1"], dataset["sentence2"])]


def test_pipeline_scores_every_label_of_a_multi_label_model(tagged):
    run, dev = tagged
    classify = pipeline_of(run / "model")
    scored = classify([r["text"] for r in read_table(dev)], top_k=None)
    assert all({s["label"] for s in labels} == set(TOPICS) for labels in scored)
    assert ["|".join(sorted(s["label"] for s in labels if s["score"] > 0.3)) for labels in scored] == \
        run_predictions(run)


def test_pipeline_keeps_the_tail_of_a_tail_truncated_model(scores):
    run, dev = scores
    assert json.loads((run / "model" / "tokenizer_config.json").read_text())["truncation_side"] == "left"
    classify = pipeline_of(run / "model")
    predicted = [p["score"] for p in classify([r["review"] for r in read_table(dev)], function_to_apply="none")]
    assert predicted == pytest.approx([float(p) for p in run_predictions(run)], abs=1e-5)


def test_the_model_card_says_how_to_predict(news, rte):
    card = (news[0] / "model" / "README.md").read_text()
    assert "glue-run predict --model <this folder> --input new.csv" in card
    assert 'pipeline("text-classification", model="<this folder>", truncation=True)' in card
    assert "longer than 16 tokens" in card
    assert 'classify({"text": first, "text_pair": second})' in (rte / "model" / "README.md").read_text()


# ---- mistakes -------------------------------------------------------------------------------------

@pytest.fixture
def no_weights(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained",
                        lambda *a, **k: pytest.fail("the model's weights were loaded"))


def test_bad_inputs_are_one_line_before_the_weights_load(news, tiny_bert, tmp_path, capsys, no_weights):
    run, dev = news
    good = write_csv(tmp_path / "good.csv", ["headline"], [["the cat was good"]])
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "metrics.json").write_text("{}")
    cases = [
        (["--model", str(tiny_bert)], "has no classification head (it is a BertModel model)"),
        (["--model", str(tmp_path / "done")], "is a run's folder, and that run saved no model (it ran without "
                                              "--save-model)"),
        (["--model", str(tmp_path / "nope")], "does not exist"),
        (["--input", str(write_csv(tmp_path / "t.csv", ["text"], [["a"]]))],
         "t.csv has no column(s) 'headline': "),
        (["--text-columns", "headline,id"], "--text-columns names 2 column(s), but"),
        (["--input", str(tmp_path / "missing.csv")], "missing.csv does not exist (given as --input)"),
        (["--input", str(write_csv(tmp_path / "x.xlsx", ["headline"], []))], "unsupported file type '.xlsx'"),
        (["--output", str(good)], "is the input file"),
        (["--output", str(write_csv(tmp_path / "old.csv", ["a"], []))], "old.csv exists; pass --overwrite"),
        (["--input", str(write_csv(tmp_path / "p.csv", ["headline", "prediction"], [["a", "b"]]))],
         "already has column(s) 'prediction', which predict writes"),
        (["--input", str(write_csv(tmp_path / "d.csv", ["headline", "headline"], [["a", "b"]]))],
         "the header names 'headline' twice"),
        (["--input", str(write_csv(tmp_path / "e.csv", [], []))], "e.csv is empty"),
    ]
    for args, message in cases:
        given = dict(zip(args[::2], args[1::2]))
        argv = ["--model", given.pop("--model", str(run / "model")), "--input", given.pop("--input", str(good))]
        assert glue_predict(*argv, *(a for pair in given.items() for a in pair)) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in " ".join(err.split()), (args, err)


def test_a_stopped_prediction_leaves_the_old_output_as_it_was(news, tmp_path, monkeypatch, capsys):
    run, dev = news
    target = write_csv(tmp_path / "out.csv", ["old"], [["kept"]])
    calls = []

    def stop_at_the_second_chunk(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)
    real = predict.predicted
    monkeypatch.setattr(predict, "predicted", stop_at_the_second_chunk)
    monkeypatch.setattr(predict, "CHUNK_ROWS", 5)
    assert glue_predict("--model", str(run), "--input", str(dev), "--output", str(target), "--overwrite") == 130
    assert "interrupted: nothing was written to" in capsys.readouterr().err
    assert read_table(target) == [{"old": "kept"}] and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    monkeypatch.setattr(predict, "predicted", real)
    assert glue_predict("--model", str(run), "--input", str(dev), "--output", str(target), "--overwrite") == 0
    assert len(read_table(target)) == 24


def test_a_run_folder_given_to_train_from_names_its_saved_model(rte, run_cli, capsys):
    assert run_cli("--task", "rte", "--model", str(rte), model=False) == 2
    assert f"is a run's folder, not a model folder; the model that run saved is {rte / 'model'}: pass --model " \
           f"{rte / 'model'}" in " ".join(capsys.readouterr().err.split())
