"""Few examples a class (--few-shot, fewshot.py): SetFit's pairs, the regression as a head on the mean-pooled
embedding (model.MeanHead) saved beside the model, the loop's checkpoints; and the defaults' choice between it
and fine-tuning."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fixtures import reviews_csv
from test_checkpoint import crash_after
from glue_runner import defaults, fewshot, model
from glue_runner.probe import head_logits
from glue_runner.tasks import TaskSpec

FAST = ["--num-train-epochs", "1", "--batch-size", "8"]


def task(problem: str, labels=("a", "b", "c")) -> TaskSpec:
    return TaskSpec(name="t", text_fields=("sentence",), metrics=(), splits={}, columns={}, test_columns={},
                    problem_type=problem, label_names=() if problem == "regression" else tuple(labels))


def own(tmp_path: Path, rows: int = 16) -> list[str]:
    (tmp_path / "train.csv").write_text(reviews_csv(rows))
    (tmp_path / "dev.csv").write_text(reviews_csv(12))
    return ["--train-file", str(tmp_path / "train.csv"), "--validation-file", str(tmp_path / "dev.csv")]


# ---- the pairs ---------------------------------------------------------------------

def test_every_example_gets_a_partner_of_its_class_and_one_of_another_each_round():
    labels = np.array([0, 0, 1, 1, 2])  # class 2 has one example: no partner of its own
    pairs = fewshot.make_pairs(labels, multi_label=False, seed=1)
    a, b, similarity = (np.asarray(pairs[k]) for k in ("a", "b", "similarity"))
    assert len(a) == fewshot.ROUNDS * (2 * 4 + 1)
    assert np.all((labels[a] == labels[b]) == (similarity == 1.0)) and np.all(a != b)
    assert pairs == fewshot.make_pairs(labels, multi_label=False, seed=1)  # a seed repeats them


def test_multi_label_pairs_share_a_label_or_none():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]])
    pairs = fewshot.make_pairs(labels, multi_label=True, seed=0)
    shared = [(labels[i] @ labels[j] > 0) for i, j in zip(pairs["a"], pairs["b"])]
    assert shared == [s == 1.0 for s in pairs["similarity"]]


# ---- the head on the mean-pooled embedding ---------------------------------------------

@pytest.mark.parametrize("problem, y", [
    ("single_label", np.array([0, 1] * 10)),
    ("single_label", np.array([0, 2, 2] * 6 + [0, 2])),  # class 1 never seen: never predicted
    ("multi_label", np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 1]] * 5)),  # label 1 never on
])
def test_the_mean_head_gives_the_regressions_outputs(problem, y, monkeypatch):
    import torch

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (20, 6))
    spec = task(problem, ("a", "b") if problem == "single_label" and y.max() == 1 else ("a", "b", "c"))
    head = fewshot.fit_head(spec, x, y)
    mean_head = fewshot.mean_head(spec, head, x.shape[1])
    # the head on the embeddings x, as the encoder would give them
    monkeypatch.setattr(model, "mean_pooled", lambda encoder, batch: torch.as_tensor(x, dtype=torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = mean_head.logits(None, {}).numpy()
    assert ours.dtype == np.float32  # computed in float32 under autocast
    expected = head_logits(spec, head, torch.as_tensor(x, dtype=torch.bfloat16).double().numpy())
    if problem == "single_label":
        shifted = ours - ours.max(1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
        assert np.allclose(probabilities, np.exp(expected) / np.exp(expected).sum(1, keepdims=True), atol=1e-4)
    else:
        seen = [0, 2]
        assert np.allclose(ours[:, seen], expected[:, seen], atol=1e-3) and np.all(ours[:, 1] < -20)


def test_the_mean_head_is_saved_and_read_back(tmp_path):
    head = model.MeanHead(np.arange(6.0).reshape(2, 3), np.array([0.5, -1.0]))
    assert model.MeanHead.saved_in(tmp_path) is None
    for name, content in head.files().items():
        (tmp_path / name).write_bytes(content)
    read = model.MeanHead.saved_in(tmp_path)
    assert np.array_equal(read.weight, head.weight) and np.array_equal(read.bias, head.bias)


# ---- end to end ----------------------------------------------------------------------

def test_few_shot_trains_saves_its_head_beside_the_model_and_resumes_exactly(run_cli, tmp_path, monkeypatch, capsys):
    from glue_runner.cli import main

    # float32: the run and predict batch the texts differently, and bf16 could round a near tie either way
    flags = [*own(tmp_path), "--few-shot", "--save-model", "--save-steps", "4", "--no-bf16"]
    assert run_cli(*flags, "--output-dir", "whole", data=False) == 0
    record = json.loads(Path("whole/metrics.json").read_text())
    assert record["train"]["steps"] == fewshot.ROUNDS * 2 * 16 // fewshot.BATCH_SIZE  # one pass over the pairs
    assert (Path("whole/model") / model.MEAN_HEAD).is_file()
    card = " ".join(Path("whole/model/README.md").read_text().split())
    assert model.MEAN_HEAD in card and "a pipeline on this folder would use the classification head" in card
    # glue-run predict reads the saved head: the run's own predictions again
    assert main(["predict", "--model", "whole/model", "--input", str(tmp_path / "dev.csv"), "--no-bf16"]) == 0
    with open(tmp_path / "dev.predictions.csv") as f:
        predicted = [row["prediction"] for row in csv.DictReader(f)]
    rows = Path("whole/predictions_validation.tsv").read_text().splitlines()[1:]
    assert predicted == [r.split("\t")[1] for r in rows]
    # scored as it is, the saved model is the run's model; fine-tuning would train a classifier it never reads
    data = [*own(tmp_path), "--no-bf16"]
    assert run_cli(*data, "--model", "whole/model", "--num-train-epochs", "0", "--output-dir", "scored",
                   data=False, model=False) == 0
    assert json.loads(Path("scored/metrics.json").read_text())["metrics"] == record["metrics"]
    capsys.readouterr()
    assert run_cli(*data, "--model", "whole/model", "--no-few-shot", "--output-dir", "tuned", data=False,
                   model=False) == 2
    assert "was trained with --few-shot" in " ".join(capsys.readouterr().err.split())

    with crash_after(monkeypatch, 1):
        run_cli(*flags, "--output-dir", "stopped", data=False)
    assert run_cli(*flags, "--output-dir", "stopped", data=False) == 0
    resumed = json.loads(Path("stopped/metrics.json").read_text())
    assert resumed["metrics"] == record["metrics"] and resumed["train"]["final_loss"] == record["train"]["final_loss"]


@pytest.mark.parametrize("flags, few_shot", [
    ([], True),  # 8 examples a class, no flag: the defaults choose the few-shot recipe
    (["--no-few-shot"], False),
    (["--learning-rate", "1e-3"], False),  # a flag that shapes fine-tuning asks for it
    (["--layer-lr-decay", "0.9"], False),
])
def test_the_defaults_choose_few_shot_for_few_examples_a_class(run_cli, tmp_path, capsys, flags, few_shot):
    assert run_cli(*own(tmp_path), *flags, "--output-dir", "run", data=False) == 0
    record = json.loads(Path("run/metrics.json").read_text())
    assert bool((record.get("chosen") or {}).get("few_shot")) is few_shot
    said = " ".join(capsys.readouterr().err.split())
    assert (f"few-shot: 8 training examples a class, at most {defaults.FEW_SHOT_UP_TO}" in said) is few_shot


def test_many_examples_a_class_and_glue_tasks_fine_tune(run_cli, tmp_path):
    many = 2 * (defaults.FEW_SHOT_UP_TO + 1)  # one more a class than the few-shot recipe takes; no flags
    assert run_cli(*own(tmp_path, rows=many), "--output-dir", "many", data=False) == 0
    assert run_cli("--task", "rte", *FAST, "--max-train-samples", "16", "--output-dir", "glue") == 0
    for folder in ("many", "glue"):
        assert not (json.loads(Path(folder, "metrics.json").read_text()).get("chosen") or {}).get("few_shot")


def test_few_shot_asked_for_says_so_and_fits_no_fine_tuning_setting(run_cli, tmp_path, capsys):
    assert run_cli(*own(tmp_path), "--few-shot", "--output-dir", "run", data=False) == 0  # not "8 ... a class"
    said = " ".join(capsys.readouterr().err.split())
    assert "few-shot (--few-shot): SetFit's recipe" in said
    assert "for BERT-base's 110M parameters" not in said and "too few to learn from" not in said  # fine-tuning's
    chosen = json.loads(Path("run/metrics.json").read_text())["chosen"]
    assert chosen["few_shot"] and chosen["notes"] == ["few-shot"]  # no "lr x10.0 for the model's size"


@pytest.mark.parametrize("flags, message", [
    (["--few-shot", "--probe"], "--probe trains only a linear head"),
    (["--few-shot", "--task", "stsb"], "--few-shot pairs texts of one class or of two, and stsb is a regression task"),
])
def test_few_shot_where_it_cannot_apply_is_refused(run_cli, capsys, flags, message):
    assert run_cli(*(["--task", "rte"] if "--task" not in flags else []), *flags) == 2
    assert message in " ".join(capsys.readouterr().err.split())
