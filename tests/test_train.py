import numpy as np
import pytest
import torch

from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError
from glue_runner.train import build_optimizer, collate, make_batches, padded_length, setup_runtime


def test_padded_length_rounds_up_and_caps():
    assert [padded_length(n, 128, buckets=False) for n in (1, 8, 9, 127, 128)] == [8, 8, 16, 128, 128]
    assert [padded_length(n, 128, buckets=True) for n in (3, 17, 33, 65, 120)] == [16, 32, 64, 128, 128]
    assert padded_length(50, 40, buckets=True) == 40


def test_training_batches_cover_every_example_once_and_group_lengths():
    lengths = np.random.default_rng(0).integers(5, 128, size=1000)
    batches = make_batches(lengths, 16, shuffle=True, seed=1)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 15  # random batches would spread over ~110 tokens
    assert not np.array_equal(flat, make_batches(lengths, 16, shuffle=True, seed=2)[0])
    again = make_batches(lengths, 16, shuffle=True, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # the seed fixes the order


def test_evaluation_batches_are_sorted_by_length():
    lengths = np.array([3, 9, 1, 7, 5])
    assert [b.tolist() for b in make_batches(lengths, 2, shuffle=False, seed=0)] == [[1, 3], [4, 0], [2]]


@pytest.mark.parametrize("n", [23, 64, 65])
def test_sharded_batches(n):
    lengths = np.arange(n) % 17
    shards = [make_batches(lengths, 4, shuffle=False, seed=0, rank=r, world_size=3) for r in range(3)]
    assert sorted(np.concatenate([np.concatenate(s) for s in shards]).tolist()) == list(range(n))
    train = [make_batches(lengths, 4, shuffle=True, seed=0, rank=r, world_size=3) for r in range(3)]
    assert len({len(s) for s in train}) == 1  # every rank takes the same number of steps


def test_collate_pads_each_batch_to_its_own_length():
    import datasets

    ds = datasets.Dataset.from_dict({"input_ids": [[2, 5, 3], [2, 5, 6, 7, 8, 9, 3]], "token_type_ids": [[0] * 3, [0] * 7],
                                     "attention_mask": [[1] * 3, [1] * 7], "length": [3, 7], "label": [1, 0]})
    batch = collate(ds, np.array([0, 1]), pad_id=0, max_len=128, buckets=False)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][0].tolist() == [2, 5, 3, 0, 0, 0, 0, 0]
    assert batch["attention_mask"].sum().item() == 10
    assert batch["labels"].tolist() == [1, 0]


def test_no_weight_decay_on_biases_and_layer_norm(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    cfg = RunConfig(task="cola", model="x", weight_decay=0.01, learning_rate=1e-3)
    optimizer = build_optimizer(model, cfg, depth={})
    decay, no_decay = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(not names[id(p)].endswith("bias") and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert any("LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_fp16_without_a_gpu():
    with pytest.raises(GlueRunnerError, match="--fp16 needs a CUDA GPU"):
        setup_runtime(RunConfig(task="cola", model="x", fp16=True, device="cpu"))


@pytest.mark.parametrize("flags, message", [
    (["--fp16", "--device", "cpu"], "--fp16 needs a CUDA GPU"),
    (["--fp16", "--bf16"], "exclude each other"),
])
def test_impossible_hardware_flags_are_said_with_the_other_flags(flags, message, capsys):
    from glue_runner.cli import main

    assert main(["--task", "cola", "--model", "x", *flags]) == 2  # before any model or data loads
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu():
    with pytest.raises(GlueRunnerError, match="no CUDA GPU is visible; use --device cpu"):
        setup_runtime(RunConfig(task="cola", model="x", device="cuda"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("flags", [["--device", "cuda"], ["--fp16"]])
def test_a_missing_gpu_is_said_before_the_sweep_starts(flags, capsys):
    from glue_runner.cli import main

    # model "x" is neither a folder nor reachable: the GPU is checked before the data, the runs and the Hub
    assert main(["--task", "cola,sst2", "--model", "x", "--data-dir", "nowhere", *flags]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "needs a CUDA GPU" in err or "no CUDA GPU is visible" in err
