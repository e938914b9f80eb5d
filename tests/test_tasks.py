import pytest

from glue_runner.errors import GlueRunnerError
from glue_runner.tasks import GLUE_ORDER, get_task, registry


def test_every_glue_task_is_registered():
    assert sorted(registry()) == sorted(GLUE_ORDER)


@pytest.mark.parametrize("name, fields, labels, metric", [
    ("cola", ("sentence",), ("unacceptable", "acceptable"), "cola"),
    ("sst2", ("sentence",), ("negative", "positive"), "sst2"),
    ("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "mrpc"),
    ("stsb", ("sentence1", "sentence2"), (), "stsb"),
    ("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "qqp"),
    ("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "mnli"),
    ("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "qnli"),
    ("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "rte"),
    ("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), "wnli"),
    ("ax", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "ax"),
])
def test_task_definitions_match_the_official_ones(name, fields, labels, metric):
    # label order is nyu-mll/glue's ClassLabel order: models fine-tuned on the Hub data rely on it
    task = get_task(name)
    assert (task.text_fields, task.label_names, task.metric) == (fields, labels, metric)
    assert task.num_labels == (1 if name == "stsb" else len(labels))


def test_mnli_has_matched_and_mismatched_dev_sets_and_ax_is_test_only():
    mnli = get_task("mnli")
    assert mnli.eval_splits == ["validation_matched", "validation_mismatched"]
    assert mnli.metric_suffix == {"validation_mismatched": "_mm"}
    ax = get_task("ax")
    assert ax.train_split is None and ax.eval_splits == [] and ax.predict_with == "mnli"


def test_task_names_are_forgiving_about_case_and_dashes():
    assert get_task("SST-2").name == "sst2"


def test_unknown_task_names_the_choices():
    with pytest.raises(GlueRunnerError, match="unknown task 'squad'.*cola, sst2"):
        get_task("squad")
