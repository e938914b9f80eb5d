"""Trackers and model cards: --report-to tensorboard's event files, and --save-model's README.md."""

import json
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, metadata_load
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from glue_runner import __version__, model_card, results, run, trackers
from glue_runner.config import RunConfig
from glue_runner.tasks import get_task
from glue_runner.train import Runtime

# MNLI: two dev sets, so two eval metrics (accuracy, accuracy_mm). 48 examples in batches of 8:
# 6 optimizer steps per epoch, 12 in all; 12 dev examples of each kind, so the 48 trained on in an epoch are
# twice the dev set and each epoch is evaluated (run.EVAL_RATIO).
ARGS = ["--task", "mnli", "--num-train-epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3",
        "--logging-steps", "4", "--max-eval-samples", "12"]
LOGGING_STEPS = [4, 6, 8, 12]  # every 4th step and each epoch's last


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Tag -> (step, value) as TensorBoard shows them (a resumed run's purge applied)."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_logs_every_step_and_each_epochs_dev_scores(run_cli):
    assert run_cli(*ARGS, "--report-to", "tensorboard", "--output-dir", "run") == 0
    record = json.loads(Path("run/metrics.json").read_text())
    logged = scalars(Path("run/tensorboard"))
    assert set(logged) == {"train/loss", "train/learning_rate", "train/samples_per_second",
                           "eval/accuracy", "eval/accuracy_mm"}
    assert [step for step, _ in logged["train/loss"]] == LOGGING_STEPS  # where the loop read the loss back
    assert logged["train/loss"][-1][1] == pytest.approx(record["train"]["final_loss"])
    for tag in ("train/learning_rate", "train/samples_per_second"):
        assert [step for step, _ in logged[tag]] == list(range(1, 13))
    assert logged["train/learning_rate"][-1][1] == 0.0 and max(v for _, v in logged["train/learning_rate"]) > 0
    for metric in ("accuracy", "accuracy_mm"):  # once per epoch, at the step where it ended
        assert logged[f"eval/{metric}"] == [(6 * epoch["epoch"], pytest.approx(epoch[metric]))
                                            for epoch in record["epochs"]]


def crash_at_second_save(monkeypatch):
    """The run 'dies' as it starts its second checkpoint, which is never written."""
    real_save, calls = results.save_checkpoint, []

    def save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("simulated crash")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(results, "save_checkpoint", save)


def test_a_resumed_run_logs_each_step_once(run_cli, monkeypatch):
    args = [*ARGS, "--report-to", "tensorboard", "--logging-steps", "2", "--save-steps", "4"]
    assert run_cli(*args, "--output-dir", "reference") == 0
    closed = []

    class Writer(trackers.summary_writer()):
        def close(self):
            closed.append(self.log_dir)
            super().close()

    with monkeypatch.context() as m, pytest.raises(SystemExit):
        m.setattr(trackers, "summary_writer", lambda: Writer)
        crash_at_second_save(m)  # saves step 4, then dies at the end of epoch 1 (step 6), after its evaluation
        run_cli(*args, "--output-dir", "run")
    assert closed == ["run/tensorboard"]  # the run failed, its log was still closed
    crashed = scalars(Path("run/tensorboard"))
    assert [s for s, _ in crashed["train/learning_rate"]] == list(range(1, 7)) and len(crashed["eval/accuracy"]) == 1

    assert run_cli(*args, "--output-dir", "run") == 0  # resumes from step 4: steps 5 and 6 are trained again
    resumed, reference = scalars(Path("run/tensorboard")), scalars(Path("reference/tensorboard"))
    assert [s for s, _ in resumed["train/learning_rate"]] == list(range(1, 13))
    for tag in ("train/loss", "eval/accuracy", "eval/accuracy_mm"):  # each step once, as if never stopped
        assert resumed[tag] == reference[tag]


def test_without_the_package_report_to_tensorboard_fails_before_loading_anything(run_cli, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # None in sys.modules: `import` raises ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setattr(run, "load_model", lambda *a: pytest.fail("the model was loaded"))
    assert run_cli(*ARGS, "--report-to", "tensorboard", "--output-dir", "run") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and 'pip install "glue-runner[tensorboard]"' in err and "Traceback" not in err
    assert not Path("run").exists()


def test_only_rank_0_writes_tensorboard_files(tmp_path):
    cfg = RunConfig(task="mnli", model="m", report_to="tensorboard")
    for rank in (0, 1):
        tracker = trackers.start(cfg, tmp_path / f"rank{rank}", Runtime(torch.device("cpu"), rank, 2), None)
        with tracker:
            tracker.log_epoch({"epoch": 1, "accuracy": 0.5})
    assert (tmp_path / "rank0" / "tensorboard").is_dir() and not (tmp_path / "rank1").exists()


def test_save_model_writes_a_model_card_with_the_dev_results(run_cli):
    assert run_cli(*ARGS, "--save-model", "--output-dir", "run") == 0
    record = json.loads(Path("run/metrics.json").read_text())
    path = Path("run/model/README.md")
    card = ModelCard.load(path)
    results_in_card = {(r.dataset_type, r.dataset_config, r.dataset_split, r.metric_type, r.metric_name, r.metric_value)
                       for r in card.data.eval_results}
    assert results_in_card == {
        ("nyu-mll/glue", "mnli", "validation_matched[:12]", "accuracy", "accuracy", record["metrics"]["accuracy"]),
        ("nyu-mll/glue", "mnli", "validation_mismatched[:12]", "accuracy", "accuracy_mm", record["metrics"]["accuracy_mm"])}
    metadata = metadata_load(path)
    assert metadata["model-index"][0]["name"] == "tiny-bert-finetuned-mnli"
    assert metadata["datasets"] == ["nyu-mll/glue"] and "base_model" not in metadata  # a local folder: no Hub id
    for line in ("| --learning-rate | 0.001 |", "| --num-train-epochs | 2.0 |", "| --batch-size | 8 |", "| --seed | 42 |",
                 "| --warmup-ratio | 0.1 |", "| --weight-decay | 0.01 |", "| --max-seq-length | 128 |",
                 "| --freeze-layers | 0 |",
                 f"glue-runner {__version__}", "fine-tuned from `tiny-bert` on GLUE MNLI"):
        assert line in card.text
    assert "--layer-lr-decay" not in card.text  # not set

    on_the_hub = ModelCard(model_card.text({**record, "model": "bert-base-uncased"}, get_task("mnli")))
    assert on_the_hub.data.base_model == "bert-base-uncased"


def test_a_card_for_own_files_and_a_dev_subset_names_them(run_cli, tmp_path):
    rows = "".join(f"{'good' if i % 2 else 'bad'} film {i},{i % 2}\n" for i in range(20))
    (tmp_path / "reviews.csv").write_text("review,stars\n" + rows)
    assert run_cli("--task", "sst2", "--num-train-epochs", "1", "--batch-size", "8", "--train-file", "reviews.csv",
                   "--validation-file", "reviews.csv", "--text-columns", "review", "--label-column", "stars",
                   "--max-eval-samples", "10", "--save-model", "--output-dir", "own", data=False) == 0
    card = ModelCard.load(Path("own/model/README.md"))
    [result] = card.data.eval_results
    assert (result.dataset_type, result.dataset_name, result.dataset_split) == ("csv", "reviews.csv", "validation[:10]")
    assert card.data.datasets is None and "train `reviews.csv`" in card.text


def test_undefined_scores_stay_out_of_the_card():
    record = {"metrics": {"accuracy": 0.5, "accuracy_mm": None}, "config": {"max_eval_samples": None}}
    assert model_card.dev_scores(record, get_task("mnli")) == [("validation_matched", "accuracy", "accuracy", 0.5)]


def test_no_card_and_no_tensorboard_unless_asked(run_cli):
    assert run_cli(*ARGS, "--output-dir", "run") == 0
    assert Path("run/metrics.json").exists()
    assert not Path("run/model").exists() and not Path("run/tensorboard").exists()
