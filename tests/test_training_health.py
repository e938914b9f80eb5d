"""Training health: a NaN/inf at any step stops the run before anything is written; CUDA
out-of-memory gives the flags that fix it, and --auto-batch-size applies them itself.

Out-of-memory is simulated on the CPU: a wrapper around the tiny BERT raises
torch.OutOfMemoryError when a forward pass holds more tokens than a limit.
"""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from glue_runner import data, results
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError
from glue_runner.tasks import get_task
from glue_runner.train import Runtime, train

CPU = Runtime(torch.device("cpu"))


@pytest.fixture(scope="module")
def sst2_train(glue_dir, tiny_bert, tmp_path_factory):
    task = get_task("sst2")
    splits = data.load_splits(task, RunConfig(task="sst2", model="x", data_dir=glue_dir), log=lambda *a: None)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    return data.tokenize(splits, task, tokenizer, 128, tmp_path_factory.mktemp("cache"))["train"]


class Flaky(torch.nn.Module):
    """The tiny BERT, with a NaN loss on one forward pass or out-of-memory above a token budget."""

    def __init__(self, tiny_bert, nan_at_call=None, max_tokens=None):
        super().__init__()
        torch.manual_seed(0)
        # no dropout: smaller passes draw other masks, and the results are compared across splits
        self.model = AutoModelForSequenceClassification.from_pretrained(
            tiny_bert, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        self.config = self.model.config
        self.nan_at_call, self.max_tokens, self.calls, self.sizes = nan_at_call, max_tokens, 0, []

    def forward(self, **batch):
        self.calls += 1
        if self.max_tokens and batch["input_ids"].numel() > self.max_tokens:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.sizes.append(len(batch["input_ids"]))
        out = self.model(**batch)
        if self.calls == self.nan_at_call:
            out.loss = out.loss * float("nan")
        return out


def config(**kw) -> RunConfig:
    return RunConfig(task="sst2", model="x", seed=1, batch_size=8, logging_steps=100, num_train_epochs=2,
                     learning_rate=1e-3, **kw).resolved({})


@pytest.mark.parametrize("save_steps", [None, 1])
def test_nan_at_a_step_that_logs_nothing_stops_before_anything_is_written(tiny_bert, sst2_train, tmp_path,
                                                                          save_steps):
    model, evaluated = Flaky(tiny_bert, nan_at_call=3), []
    with pytest.raises(GlueRunnerError, match=r"NaN/inf at step 3 \(learning rate .*--learning-rate"):
        train(model, sst2_train, config(save_steps=save_steps), CPU, pad_id=0, output_dir=tmp_path,
              on_epoch_end=evaluated.append)
    assert evaluated == []  # the epoch's evaluation never ran on the diverged model
    assert [results.step_of(p) for p in results.list_checkpoints(tmp_path)] == ([1, 2] if save_steps else [])


def test_a_huge_learning_rate_stops_the_run_with_nothing_written(run_cli, tmp_path, capsys):
    assert run_cli("--task", "sst2", "--learning-rate", "1e30", "--output-dir", str(tmp_path / "run")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "NaN/inf at step" in err and "Try a lower --learning-rate" in err
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "results" / "runs.csv").exists()


def test_out_of_memory_names_the_batch_size_and_the_fix(tiny_bert, sst2_train):
    with pytest.raises(GlueRunnerError) as e:
        train(Flaky(tiny_bert, max_tokens=40), sst2_train, config(), CPU, pad_id=0)
    assert "ran out of memory at step 1 with 8 examples per forward pass (--batch-size 8" in str(e.value)
    assert "--batch-size 4 --gradient-accumulation-steps 2 (the same effective batch)" in str(e.value)
    assert "--auto-batch-size" in str(e.value)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_auto_batch_size_halves_the_pass_and_keeps_the_result(tiny_bert, sst2_train, accumulation):
    """Some batches fit and some do not (their lengths differ), so an out-of-memory can come after
    earlier micro-batches of the same step already added gradients: the step must start over."""
    plain = Flaky(tiny_bert)
    stats = train(plain, sst2_train, config(gradient_accumulation_steps=accumulation), CPU, pad_id=0)
    squeezed, messages = Flaky(tiny_bert, max_tokens=8 * 12), []
    auto = train(squeezed, sst2_train, config(gradient_accumulation_steps=accumulation, auto_batch_size=True),
                 CPU, pad_id=0, log=messages.append)
    assert max(squeezed.sizes) < 8 and "--auto-batch-size: trying 4 per pass" in messages[0]
    assert (auto.steps, auto.samples) == (stats.steps, stats.samples)
    assert auto.final_loss == pytest.approx(stats.final_loss, rel=1e-4)
    for a, b in zip(plain.parameters(), squeezed.parameters()):
        assert torch.allclose(a, b, atol=1e-5), "the effective batch changed"


def test_auto_batch_size_gives_up_at_one_example(tiny_bert, sst2_train):
    with pytest.raises(GlueRunnerError, match="with 1 examples per forward pass"):
        train(Flaky(tiny_bert, max_tokens=1), sst2_train, config(auto_batch_size=True), CPU, pad_id=0)
