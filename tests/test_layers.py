"""--layer-lr-decay, --freeze-layers and --gradual-unfreezing: where the layers are, each group's
learning rate, which parameters train in which epoch, exact resume, and the errors.

The tiny BERT has 2 layers, so its depths are: 0 the head (classifier and pooler), 1 layer 1,
2 layer 0, 3 the embeddings.
"""

import json

import pytest
import torch
import transformers
from test_checkpoint import ARGS, assert_same, crash_after, outcome
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from glue_runner import data, layers, results
from glue_runner.config import RunConfig, check_bounds
from glue_runner.tasks import get_task
from glue_runner.errors import GlueRunnerError
from glue_runner.train import Runtime, set_trainable, start_state, train

CPU = Runtime(torch.device("cpu"))
DEPTH = {"classifier": 0, "bert.pooler": 0, "bert.encoder.layer.1.": 1, "bert.encoder.layer.0.": 2,
         "bert.embeddings": 3}


def depth_of(name: str) -> int:
    return next(d for prefix, d in DEPTH.items() if name.startswith(prefix))


def config(**kw) -> RunConfig:
    return RunConfig(task="mrpc", model="x", seed=1, batch_size=8, logging_steps=100, learning_rate=1e-3,
                     **kw).resolved({})


def tiny_model(tiny_bert) -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)


@pytest.fixture(scope="module")
def mrpc_train(glue_dir, tiny_bert, tmp_path_factory):
    """48 sentence pairs (both token types), 6 steps of 8 per epoch."""
    task = get_task("mrpc")
    splits = data.load_splits(task, RunConfig(task="mrpc", model="x", data_dir=glue_dir), log=lambda *a: None)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    return data.tokenize(splits, task, tokenizer, 128, tmp_path_factory.mktemp("cache"))["train"]


def weights_per_epoch(model, train_set, cfg: RunConfig) -> list[dict[str, torch.Tensor]]:
    """The weights before training and after each epoch."""
    def snapshot() -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in model.named_parameters()}

    seen = [snapshot()]
    train(model, train_set, cfg, CPU, pad_id=0, on_epoch_end=lambda epoch, last: seen.append(snapshot()) or {},
          schedule=layers.LayerSchedule(cfg))
    return seen


def changed_depths(before: dict, after: dict) -> set[int]:
    return {depth_of(name) for name in before if not torch.equal(before[name], after[name])}


# ---- where the layers are --------------------------------------------------

def test_depths_of_the_tiny_bert(tiny_bert):
    model = tiny_model(tiny_bert)
    depth, count = layers.depths(model)
    assert count == 2
    assert depth == {name: depth_of(name) for name, _ in model.named_parameters()}
    assert depth["bert.pooler.dense.weight"] == 0  # the pooler goes with the head: it only feeds the classifier


def meta_model(config) -> torch.nn.Module:
    with torch.device("meta"):  # the structure without memory for weights
        return AutoModelForSequenceClassification.from_config(config)


SMALL = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.mark.parametrize("config, layer_prefix, embeddings", [
    (transformers.BertConfig(**SMALL), "bert.encoder.layer.", {"bert.embeddings."}),
    (transformers.RobertaConfig(**SMALL), "roberta.encoder.layer.", {"roberta.embeddings."}),
    # ELECTRA-small's embeddings are narrower than its layers: the projection between goes with the embeddings
    (transformers.ElectraConfig(embedding_size=16, **SMALL), "electra.encoder.layer.",
     {"electra.embeddings.", "electra.embeddings_project."}),
    (transformers.DistilBertConfig(dim=32, n_layers=3, n_heads=2, hidden_dim=64), "distilbert.transformer.layer.",
     {"distilbert.embeddings."}),
], ids=["bert", "roberta", "electra", "distilbert"])
def test_layers_are_found_in_each_encoder_family(config, layer_prefix, embeddings):
    model = meta_model(config)
    depth, count = layers.depths(model)
    assert count == 3
    for name, d in depth.items():
        if name.startswith(layer_prefix):
            assert d == 3 - int(name.removeprefix(layer_prefix).split(".")[0]), name  # the top layer is depth 1
        elif any(name.startswith(prefix) for prefix in embeddings):
            assert d == 4, name
        else:
            assert d == 0, name  # the head
    assert set(depth.values()) == {0, 1, 2, 3, 4}


def test_an_architecture_without_a_layer_list_is_refused():
    albert = meta_model(transformers.AlbertConfig(embedding_size=16, **SMALL))  # one layer shared by all three
    with pytest.raises(GlueRunnerError, match="AlbertModel holds no list of 3 layers.*drop these flags"):
        layers.depths(albert)


# ---- learning rates --------------------------------------------------------

def test_each_groups_learning_rate_after_warm_up(tiny_bert):
    model = tiny_model(tiny_bert)
    cfg = config(layer_lr_decay=0.5, weight_decay=0.01, warmup_ratio=0.2)
    state = start_state(model, cfg, CPU, total_steps=10, resume_from=None,
                        depth=layers.LayerSchedule(cfg).depths(model))  # 2 warm-up steps
    for _ in range(4):
        state.optimizer.step()  # no gradients: changes nothing
        state.scheduler.step()
    # after 4 of 10 steps the schedule is at (10 - 4) / (10 - 2) = 0.75 of the peak
    expected = {0: 1e-3 * 0.75, 1: 0.5e-3 * 0.75, 2: 0.25e-3 * 0.75, 3: 0.125e-3 * 0.75}
    names = {id(p): n for n, p in model.named_parameters()}
    seen = set()
    for group in state.optimizer.param_groups:
        for p in group["params"]:
            name = names[id(p)]
            seen.add(name)
            assert group["lr"] == pytest.approx(expected[depth_of(name)]), name
            # the BERT recipe's split is kept within every depth
            no_decay = name.endswith("bias") or "LayerNorm" in name
            assert group["weight_decay"] == (0.0 if no_decay else 0.01), name
    assert seen == set(names.values())
    assert len(state.optimizer.param_groups) == 8  # 4 depths x (decay, no decay)
    assert state.scheduler.get_last_lr()[0] == pytest.approx(expected[0])  # the head's rate is the one reported


# ---- which parameters train ------------------------------------------------

def test_frozen_layers_never_change_and_the_others_do(tiny_bert, mrpc_train):
    model = tiny_model(tiny_bert)
    cfg = config(freeze_layers=1, num_train_epochs=1)
    before, after = weights_per_epoch(model, mrpc_train, cfg)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {name for name in before if depth_of(name) >= 2}  # layer 0 and the embeddings
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == set(before) - frozen
    assert layers.LayerSchedule(cfg).trained_parameters(model, 1) == sum(model.get_parameter(n).numel() for n in changed)


def test_frozen_parameters_stay_out_of_the_optimizer(tiny_bert):
    model = tiny_model(tiny_bert)
    cfg = config(freeze_layers=1, gradual_unfreezing=True)
    schedule = layers.LayerSchedule(cfg)
    set_trainable(model, schedule, epoch=None)
    held = {id(p) for g in start_state(model, cfg, CPU, 10, None, schedule.depths(model)).optimizer.param_groups
            for p in g["params"]}
    # the head and layer 1, although gradual unfreezing trains layer 1 only from the second epoch
    assert held == {id(p) for n, p in model.named_parameters() if depth_of(n) <= 1}


def test_gradual_unfreezing_adds_one_layer_per_epoch_from_the_top(tiny_bert, mrpc_train):
    model = tiny_model(tiny_bert)
    seen = weights_per_epoch(model, mrpc_train, config(gradual_unfreezing=True, num_train_epochs=5))
    changed = [changed_depths(a, b) for a, b in zip(seen, seen[1:])]
    assert changed == [{0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3}]


def test_gradual_unfreezing_keeps_frozen_layers_frozen(tiny_bert, mrpc_train):
    model = tiny_model(tiny_bert)
    seen = weights_per_epoch(model, mrpc_train, config(gradual_unfreezing=True, freeze_layers=1, num_train_epochs=4))
    assert [changed_depths(a, b) for a, b in zip(seen, seen[1:])] == [{0}, {0, 1}, {0, 1}, {0, 1}]


def test_parameters_trained_counts_the_last_epoch_a_fractional_one_too(tiny_bert):
    model = tiny_model(tiny_bert)

    def count(cfg):
        return layers.LayerSchedule(cfg).trained_parameters(model, cfg.num_train_epochs)

    size = {d: sum(p.numel() for n, p in model.named_parameters() if depth_of(n) == d) for d in range(4)}
    assert count(config(num_train_epochs=3)) == sum(size.values())
    assert count(config(num_train_epochs=0)) == 0
    for epochs, trained in [(1, size[0]), (2.5, size[0] + size[1] + size[2]), (9, sum(size.values()))]:
        assert count(config(gradual_unfreezing=True, num_train_epochs=epochs)) == trained


def test_a_run_records_and_says_how_many_parameters_it_trained(run_cli, tiny_bert, capsys):
    assert run_cli("--task", "sst2", "--num-train-epochs", "2", "--batch-size", "8", "--gradual-unfreezing",
                   "--freeze-layers", "1", "--output-dir", "run") == 0
    record = json.loads(open("run/metrics.json").read())
    trained = record["train"]["trained_parameters"]
    assert f"trains {trained:,} of " in " ".join(capsys.readouterr().err.split())
    assert (record["config"]["gradual_unfreezing"], record["config"]["freeze_layers"]) == (True, 1)
    assert record["identity"]["freeze_layers"] == 1 and record["identity"]["layer_lr_decay"] is None
    model = tiny_model(tiny_bert)
    # two epochs: the head and the top layer (depth 1)
    assert trained == sum(p.numel() for n, p in model.named_parameters() if depth_of(n) <= 1)


# ---- exact resume ----------------------------------------------------------

@pytest.mark.parametrize("flags", [("--layer-lr-decay", "0.5"), ("--freeze-layers", "1"), ("--gradual-unfreezing",)],
                         ids=["layer-lr-decay", "freeze-layers", "gradual-unfreezing"])
def test_resume_ends_like_an_uninterrupted_run(run_cli, tmp_path, monkeypatch, flags):
    # --save-steps 4, 12 steps per epoch: the 5th save is at step 20, inside epoch 2, which unfroze layer 1
    assert run_cli(*ARGS, *flags, "--output-dir", str(tmp_path / "reference")) == 0
    with crash_after(monkeypatch, 5):
        run_cli(*ARGS, *flags, "--save-steps", "4", "--output-dir", str(tmp_path / "run"))
    assert results.step_of(results.list_checkpoints(tmp_path / "run")[-1]) == 20
    assert run_cli(*ARGS, *flags, "--save-steps", "4", "--output-dir", str(tmp_path / "run")) == 0
    assert_same(outcome(tmp_path / "run"), outcome(tmp_path / "reference"))


# ---- errors ----------------------------------------------------------------

@pytest.mark.parametrize("decay", [0.0, -0.5, 1.5, float("nan")])
def test_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(GlueRunnerError, match="--layer-lr-decay must be more than 0 and at most 1"):
        check_bounds(RunConfig(task="cola", model="m", layer_lr_decay=decay))
    check_bounds(RunConfig(task="cola", model="m", layer_lr_decay=1.0))


def no_weights(monkeypatch) -> None:
    def load(*a, **k):
        raise AssertionError("the weights were loaded")
    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", load)


def test_freezing_more_layers_than_the_model_has_is_refused_before_the_weights_load(run_cli, capsys, monkeypatch):
    no_weights(monkeypatch)
    assert run_cli("--task", "sst2", "--freeze-layers", "3") == 2
    assert "--freeze-layers 3 is more than the 2 layers of" in capsys.readouterr().err
    assert run_cli("--task", "sst2", "--freeze-layers", "-1") == 2
    assert "--freeze-layers must be at least 0, not -1" in capsys.readouterr().err


def test_an_albert_is_refused_before_its_weights_load(run_cli, tiny_bert, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "tiny-albert"  # a config and a tokenizer are all the check reads
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    transformers.AlbertConfig(embedding_size=16, **SMALL).save_pretrained(folder)
    no_weights(monkeypatch)
    assert run_cli("--task", "sst2", "--model", str(folder), "--layer-lr-decay", "0.8", model=False) == 2
    assert "AlbertModel holds no list of 3 layers" in " ".join(capsys.readouterr().err.split())
