import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError
from glue_runner.model import load_model
from glue_runner.tasks import get_task


def save_classifier(base, folder, id2label):
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return model


def test_base_model_gets_a_fresh_head_with_the_tasks_labels(tiny_bert):
    loaded = load_model(get_task("mnli"), RunConfig(task="mnli", model=str(tiny_bert)))
    assert loaded.model.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert loaded.labels.to_model == (0, 1, 2) and not loaded.labels.reordered
    assert next(loaded.model.parameters()).dtype == torch.float32


def test_fine_tuned_checkpoint_keeps_its_label_order(tiny_bert, tmp_path):
    # Two checkpoints that are the same classifier with the label rows stored in another
    # order must give the same predictions: otherwise an MNLI checkpoint scores ~7%.
    torch.manual_seed(0)
    ours = save_classifier(tiny_bert, tmp_path / "ours", {0: "entailment", 1: "neutral", 2: "contradiction"})
    theirs = save_classifier(tiny_bert, tmp_path / "theirs", {0: "CONTRADICTION", 1: "ENTAILMENT", 2: "NEUTRAL"})
    order = [2, 0, 1]  # theirs row i holds ours row order[i]
    theirs.load_state_dict(ours.state_dict())
    with torch.no_grad():
        theirs.classifier.weight.copy_(ours.classifier.weight[order])
        theirs.classifier.bias.copy_(ours.classifier.bias[order])
    theirs.save_pretrained(tmp_path / "theirs")

    task = get_task("mnli")
    a = load_model(task, RunConfig(task="mnli", model=str(tmp_path / "ours")))
    b = load_model(task, RunConfig(task="mnli", model=str(tmp_path / "theirs")))
    assert b.labels.to_model == (1, 2, 0) and b.labels.reordered
    inputs = a.tokenizer(["the cat sat", "a dog ran fast", "he said yes"], ["the cat sat", "not", "why"],
                         padding=True, return_tensors="pt")
    a.model.eval(), b.model.eval()
    with torch.no_grad():
        logits_a, logits_b = a.model(**inputs).logits.numpy(), b.model(**inputs).logits.numpy()
    assert not np.allclose(logits_a, logits_b)
    np.testing.assert_allclose(a.labels.task_logits(logits_a), b.labels.task_logits(logits_b), rtol=1e-5)
    assert (a.labels.predictions(logits_a) == b.labels.predictions(logits_b)).all()


def test_head_that_does_not_fit_is_an_error_unless_asked_to_replace_it(tiny_bert, tmp_path):
    save_classifier(tiny_bert, tmp_path / "two", {0: "negative", 1: "positive"})
    cfg = RunConfig(task="mnli", model=str(tmp_path / "two"))
    with pytest.raises(GlueRunnerError, match="head with 2 output.*mnli needs 3; pass --ignore-mismatched-sizes"):
        load_model(get_task("mnli"), cfg)
    cfg.ignore_mismatched_sizes = True
    assert load_model(get_task("mnli"), cfg).model.config.num_labels == 3


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(GlueRunnerError, match="model folder .*nowhere does not exist"):
        load_model(get_task("cola"), RunConfig(task="cola", model=str(tmp_path / "nowhere")))


def test_folder_that_is_not_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(GlueRunnerError, match="could not load model"):
        load_model(get_task("cola"), RunConfig(task="cola", model=str(tmp_path)))


def test_ax_needs_an_mnli_model(tiny_bert):
    with pytest.raises(GlueRunnerError, match="ax is predicted with a model fine-tuned on mnli"):
        load_model(get_task("ax"), RunConfig(task="ax", model=str(tiny_bert)))


def test_regression_head_has_one_output(tiny_bert):
    loaded = load_model(get_task("stsb"), RunConfig(task="stsb", model=str(tiny_bert)))
    assert loaded.model.config.num_labels == 1 and loaded.model.config.problem_type == "regression"


def test_sequence_longer_than_the_model_reads_is_an_error(tiny_bert):
    with pytest.raises(GlueRunnerError, match="--max-seq-length 512 is longer than .* \\(128 positions\\)"):
        load_model(get_task("cola"), RunConfig(task="cola", model=str(tiny_bert), max_seq_length=512))
