"""Few examples a class (--few-shot, fewshot.py): SetFit's pairs, the regression head folded into the model's
output layer, the loop's checkpoints; and the defaults' choice between it and fine-tuning."""

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures import reviews_csv
from glue_runner import fewshot
from glue_runner.probe import head_logits, train_head
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


# ---- the head, in the output layer ----------------------------------------------------

@pytest.mark.parametrize("problem, y", [
    ("single_label", np.array([0, 1] * 10)),
    ("single_label", np.array([0, 2, 2] * 6 + [0, 2])),  # class 1 never seen: never predicted
    ("multi_label", np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 1]] * 5)),  # label 1 never on
    ("regression", np.linspace(0, 5, 20)),
])
def test_the_head_folded_into_a_linear_layer_gives_the_regressions_outputs(problem, y):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (20, 6))
    spec = task(problem, ("a", "b") if problem == "single_label" and y.max() == 1 else ("a", "b", "c"))
    head = train_head(spec, x, y)
    order = tuple(reversed(range(spec.num_labels)))  # a model whose outputs come in another order
    weight, bias = fewshot.head_weights(spec, head, order, x.shape[1])
    logits = x @ weight.T + bias
    expected = head_logits(spec, head, x)
    ours = logits[:, list(order)]  # back in the task's order
    if problem == "single_label":
        shifted = ours - ours.max(1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
        assert np.allclose(probabilities, np.exp(expected) / np.exp(expected).sum(1, keepdims=True), atol=1e-6)
    elif problem == "multi_label":
        seen = [0, 2]
        assert np.allclose(ours[:, seen], expected[:, seen], atol=1e-6) and np.all(ours[:, 1] < -20)
    else:
        assert np.allclose(logits[:, 0], expected[:, 0])


# ---- end to end ----------------------------------------------------------------------

def test_few_shot_trains_saves_a_standard_model_and_resumes_exactly(run_cli, tmp_path, monkeypatch):
    import transformers

    from glue_runner import results

    flags = [*own(tmp_path), "--few-shot", "--save-model", "--save-steps", "4"]
    assert run_cli(*flags, "--output-dir", "whole", data=False) == 0
    record = json.loads(Path("whole/metrics.json").read_text())
    assert record["train"]["steps"] == fewshot.ROUNDS * 2 * 16 // fewshot.BATCH_SIZE  # one pass over the pairs
    # the saved folder is a classification model whose own outputs are the run's predictions
    classify = transformers.pipeline("text-classification", model="whole/model", device="cpu")
    rows = Path("whole/predictions_validation.tsv").read_text().splitlines()[1:]
    texts = reviews_csv(12).splitlines()[1:]
    assert [p["label"] for p in classify([t.rsplit(",", 1)[0] for t in texts])] == [r.split("\t")[1] for r in rows]

    real = results.save_checkpoint

    def dies(*args, **kwargs):
        real(*args, **kwargs)
        raise SystemExit("stopped")

    with monkeypatch.context() as m, pytest.raises(SystemExit):
        m.setattr(results, "save_checkpoint", dies)
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
    assert ("few-shot: 8 training examples a class, at most 32" in said) is few_shot


def test_many_examples_a_class_and_glue_tasks_fine_tune(run_cli, tmp_path):
    assert run_cli(*own(tmp_path, rows=80), *FAST, "--output-dir", "many", data=False) == 0  # 40 a class
    assert run_cli("--task", "rte", *FAST, "--max-train-samples", "16", "--output-dir", "glue") == 0
    for folder in ("many", "glue"):
        assert not (json.loads(Path(folder, "metrics.json").read_text()).get("chosen") or {}).get("few_shot")


@pytest.mark.parametrize("flags, message", [
    (["--few-shot", "--probe"], "--probe trains only a linear head"),
    (["--few-shot", "--task", "stsb"], "--few-shot pairs texts of one class or of two, and stsb is a regression task"),
])
def test_few_shot_where_it_cannot_apply_is_refused(run_cli, capsys, flags, message):
    assert run_cli(*(["--task", "rte"] if "--task" not in flags else []), *flags) == 2
    assert message in " ".join(capsys.readouterr().err.split())
