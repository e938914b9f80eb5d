"""The task registry: tasks/*.yaml over tasks/_defaults.yaml, and nothing else."""

import pytest

from glue_runner import data, leaderboard, submission
from glue_runner.tasks import get_task, glue_tasks, registry
from glue_runner.errors import GlueRunnerError

# The GLUE leaderboard's order (gluebenchmark.com), which is also the order of --task all.
GLUE_ORDER = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "ax"]


def test_every_glue_task_is_registered_in_the_leaderboards_order():
    assert [t.name for t in glue_tasks()] == GLUE_ORDER
    assert sorted(registry()) == sorted(GLUE_ORDER)


@pytest.mark.parametrize("name, fields, labels, metric", [
    ("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",)),
    ("sst2", ("sentence",), ("negative", "positive"), ("accuracy",)),
    ("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy")),
    ("stsb", ("sentence1", "sentence2"), (), ("pearson", "spearmanr")),
    ("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy")),
    ("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",)),
    ("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",)),
    ("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",)),
    ("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",)),
    ("ax", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("matthews_correlation",)),
])
def test_task_definitions_match_the_official_ones(name, fields, labels, metric):
    # label order is nyu-mll/glue's ClassLabel order: models fine-tuned on the Hub data rely on it
    task = get_task(name)
    assert (task.text_fields, task.label_names, task.metrics) == (fields, labels, metric)
    assert task.num_labels == (1 if name == "stsb" else len(labels))


def test_mnli_has_matched_and_mismatched_dev_sets_and_ax_is_test_only():
    mnli = get_task("mnli")
    assert mnli.eval_splits == ["validation_matched", "validation_mismatched"]
    assert {n: s.metric_suffix for n, s in mnli.splits.items() if s.metric_suffix} == {"validation_mismatched": "_mm"}
    ax = get_task("ax")
    assert ax.train_split is None and ax.eval_splits == [] and ax.predict_with == "mnli"


def test_task_names_are_forgiving_about_case_and_dashes():
    assert get_task("SST-2").name == "sst2"


def test_unknown_task_names_the_choices():
    with pytest.raises(GlueRunnerError, match="unknown task 'squad'.*cola, sst2"):
        get_task("squad")


def test_shared_values_come_from_defaults_and_a_task_file_overrides_them():
    rte, cola = get_task("rte"), get_task("cola")
    assert rte.recipe == {"batch_size": 16, "warmup_ratio": 0.1, "weight_decay": 0.01, "learning_rate": 3e-5,
                          "num_train_epochs": 10}
    assert cola.recipe["batch_size"] == 32 and cola.hub == "nyu-mll/glue"
    assert (get_task("mnli").submission_labels, cola.submission_labels) == ("names", "index")


def test_leaderboard_columns_and_submission_files_come_from_the_task_files():
    columns = leaderboard.glue_columns()
    assert [c.name for c in columns] == ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI-m", "MNLI-mm", "QNLI",
                                         "RTE", "WNLI", "AX"]
    assert {c.name: c.metrics for c in columns}["MNLI-mm"] == ("accuracy_mm",)
    assert {c.name: c.metrics for c in columns}["STS-B"] == ("pearson", "spearmanr")
    assert leaderboard.scored_tasks() == set(GLUE_ORDER) - {"ax"}
    assert list(submission.submission_files())[-3:] == ["RTE.tsv", "WNLI.tsv", "AX.tsv"]


def write_tasks(folder, files: dict):
    folder.mkdir()
    (folder / "_defaults.yaml").write_text("hub: x\n")
    for name, text in files.items():
        (folder / name).write_text(text)


TASK = """name: {name}
order: 1
description: d
text_fields: [sentence]
label_names: [a, b]
metrics: [{metric}]
glue_dir: X
splits: {{train: {{file: train.tsv}}}}
columns: {{sentence: sentence, label: label}}
test_columns: {{idx: index, sentence: sentence}}
"""


@pytest.fixture
def task_folder(tmp_path, monkeypatch):
    """registry() reading a folder of the test's own instead of tasks/."""
    import importlib.resources

    folder = tmp_path / "tasks"
    real = importlib.resources.files
    monkeypatch.setattr(importlib.resources, "files",
                        lambda package: folder if package == "glue_runner.task_files" else real(package))
    data.registry.cache_clear()
    yield folder
    data.registry.cache_clear()


def test_a_duplicate_task_name_is_an_error_naming_both_files(task_folder):
    write_tasks(task_folder, {"one.yaml": TASK.format(name="same", metric="accuracy"),
                              "two.yaml": TASK.format(name="same", metric="accuracy")})
    with pytest.raises(GlueRunnerError, match="task 'same' is defined twice, in one.yaml and two.yaml"):
        registry()


def test_an_unknown_metric_is_an_error_naming_the_file_before_any_run(task_folder):
    from glue_runner.tasks import check_metrics

    write_tasks(task_folder, {"mine.yaml": TASK.format(name="mine", metric="bleu")})
    with pytest.raises(GlueRunnerError, match="mine.yaml: unknown metric\\(s\\) bleu; choose from .*accuracy"):
        check_metrics([registry()["mine"]])


@pytest.mark.parametrize("metrics", ["accuracy, f1_macro", "f1_micro, f1_macro, subset_accuracy"])
def test_own_multi_class_and_multi_label_metrics_are_known(task_folder, metrics):
    from glue_runner.tasks import check_metrics

    write_tasks(task_folder, {"mine.yaml": TASK.format(name="mine", metric=metrics)})
    check_metrics([registry()["mine"]])
    assert registry()["mine"].metrics == tuple(metrics.split(", "))
