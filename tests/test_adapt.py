"""--adapt-lm: masked-LM training of the encoder on the task's texts or a file, then fine-tuning from it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from glue_runner import adapt, cli, results, run, train
from glue_runner.config import RunConfig
from test_checkpoint import crash_after  # the process 'dies' right after its n-th checkpoint

# 6 steps of 8 texts per adaptation epoch; a learning rate high enough that the loss moves in seconds
ADAPT = ["--adapt-lm", "task", "--adapt-epochs", "3", "--adapt-learning-rate", "3e-3"]
FINE_TUNE = ["--task", "mrpc", "--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]


def record(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def adapted(folder: Path) -> Path:
    return folder / "adapt-lm" / "model"


@pytest.fixture
def loads(monkeypatch):
    """The models a run loads: ('mlm', model) for adaptation, ('classifier', model) for fine-tuning."""
    seen = []
    real_mlm, real_classifier = adapt.load_masked_lm, run.load_model

    def load_masked_lm(cfg, say):
        seen.append(("mlm", cfg.model))
        return real_mlm(cfg, say)

    def load_model(task, cfg, say, check):
        seen.append(("classifier", cfg.model))
        return real_classifier(task, cfg, say, check)

    monkeypatch.setattr(adapt, "load_masked_lm", load_masked_lm)
    monkeypatch.setattr(run, "load_model", load_model)
    return seen


# ---- masking and the held-out split ----------------------------------------

SPECIAL = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK]
MASKER = adapt.Masker(mask_id=4, vocab_size=50, special_ids=torch.tensor(SPECIAL))


def batch_of_ids(rows: int = 400, width: int = 100) -> torch.Tensor:  # 400 x 100: the ratios settle
    ids = torch.randint(5, 50, (rows, width), generator=torch.Generator().manual_seed(3))
    ids[:, 0], ids[:, -1], ids[::2, 60:] = 2, 3, 0  # [CLS] ... [SEP], every other row padded after 60
    ids[:, 30] = 1  # an [UNK] in each row
    return ids


def test_masking_chooses_15_percent_of_ordinary_tokens_and_replaces_them_80_10_10():
    ids = batch_of_ids()
    inputs, labels = MASKER.mask(ids, torch.Generator().manual_seed(0))
    chosen = labels != -100
    ordinary = ~torch.isin(ids, torch.tensor(SPECIAL))
    assert not (chosen & ~ordinary).any()  # [CLS], [SEP], padding and [UNK] never
    assert torch.equal(labels[chosen], ids[chosen])  # the labels are the original tokens
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes
    assert chosen.sum() / ordinary.sum() == pytest.approx(0.15, abs=0.01)  # of ~29,000 ordinary tokens
    as_mask = (inputs[chosen] == 4).float().mean()
    kept = (inputs[chosen] == ids[chosen]).float().mean()  # a random draw can also give the same token: 1 in 50
    assert (as_mask, kept) == (pytest.approx(0.8, abs=0.02), pytest.approx(0.1 + 0.1 / 50, abs=0.015))
    assert inputs[chosen & (inputs != 4) & (inputs != ids)].unique().numel() > 30  # the rest: random tokens


def test_masking_draws_from_the_global_rng_that_checkpoints_save():
    ids = batch_of_ids()
    torch.manual_seed(7)
    first = MASKER.mask(ids)
    state = train.rng_state()
    second = MASKER.mask(ids)
    train.set_rng_state(state)
    assert all(torch.equal(a, b) for a, b in zip(MASKER.mask(ids), second))  # restored: the same masks again
    assert not torch.equal(first[1], second[1])


def test_a_batch_always_has_a_masked_token():
    ids = torch.tensor([[2, 9, 3, 0, 0]])  # one ordinary token: 85% of draws would choose none
    for seed in range(20):
        _, labels = MASKER.mask(ids, torch.Generator().manual_seed(seed))
        assert labels.tolist() == [[-100, 9, -100, -100, -100]]


def test_the_heldout_split_is_fixed_and_small():
    np.random.seed(1)
    training, heldout = adapt.heldout_split(3668)
    np.random.seed(2)  # the run's seed does not move it
    assert [a.tolist() for a in adapt.heldout_split(3668)] == [training.tolist(), heldout.tolist()]
    assert len(heldout) == 183 and sorted([*training, *heldout]) == list(range(3668))
    assert len(adapt.heldout_split(100_000)[1]) == 1000 and len(adapt.heldout_split(10)[1]) == 1
    assert heldout.max() > 3000  # drawn from everywhere, not the first lines


# ---- the one command ---------------------------------------------------------

def test_adapt_then_fine_tune_from_the_adapted_model(run_cli, tiny_bert, tmp_path, loads, capsys):
    assert run_cli(*FINE_TUNE, *ADAPT, "--output-dir", "run") == 0
    folder, model_dir = tmp_path / "run", adapted(tmp_path / "run")
    assert loads == [("mlm", str(tiny_bert)), ("classifier", str(Path("run/adapt-lm/model")))]  # the adapted folder
    saved = json.loads((model_dir / "adaptation.json").read_text())
    assert (model_dir / "tokenizer.json").is_file() and results.list_checkpoints(folder / "adapt-lm") == []
    loss = saved["heldout_loss"]
    assert loss["after"] < loss["before"] - 0.05  # adapting lowered the masked-LM loss on texts it never trained on
    assert saved["texts"] == {"train": 46, "heldout": 2} and saved["steps"] == 18
    assert [e["epoch"] for e in saved["history"]] == [1, 2, 3] and saved["history"][-1]["heldout_loss"] == loss["after"]
    assert saved["new_head"] and all(name.startswith("cls.") for name in saved["new_head"])  # the tiny BERT has none
    out = record(folder)
    assert out["adaptation"] == {k: v for k, v in saved.items() if k != "identity"}
    assert out["identity"] == saved["identity"] and out["identity"]["adapt_lm"] == "task"
    assert out["model_name"] == "tiny-bert-tapt"
    err = " ".join(capsys.readouterr().err.split())
    assert "has no trained masked-LM head" in err and "transformers initialises one" in err
    assert f"held-out masked-LM loss {loss['before']:.4f} -> {loss['after']:.4f}" in err
    # the pooler, which the masked-LM model has no place for, is the original's: fine-tuning starts from it
    original, weights = load_file(Path(tiny_bert) / "model.safetensors"), load_file(model_dir / "model.safetensors")
    assert torch.equal(weights["bert.pooler.dense.weight"], original["pooler.dense.weight"])
    assert not torch.equal(weights["bert.encoder.layer.0.attention.self.query.weight"],
                           original["encoder.layer.0.attention.self.query.weight"])


def test_the_same_command_again_skips_the_run(run_cli, tmp_path, loads, capsys):
    assert run_cli(*FINE_TUNE, *ADAPT, "--max-train-samples", "16") == 0
    loads.clear()
    assert run_cli(*FINE_TUNE, *ADAPT, "--max-train-samples", "16") == 0
    assert loads == [] and "already done" in capsys.readouterr().err
    # the original model's run is another run, in another folder
    assert run_cli(*FINE_TUNE, "--max-train-samples", "16") == 0
    assert [kind for kind, _ in loads] == ["classifier"] and "adapt-lm" not in loads[0][1]
    names = sorted(p.name for p in (tmp_path / "results" / "runs").iterdir())
    assert names == ["tiny-bert", "tiny-bert-tapt"]


def test_a_finished_adaptation_is_not_redone_when_fine_tuning_resumes(run_cli, tmp_path, loads, monkeypatch):
    args = [*FINE_TUNE, *ADAPT, "--save-model", "--max-train-samples", "24", "--num-train-epochs", "2",
            "--max-eval-samples", "12"]  # each epoch evaluated (run.EVAL_RATIO), so each but the last saves
    assert run_cli(*args, "--output-dir", "reference") == 0
    expected = record(tmp_path / "reference")
    # the adaptation saves 2 checkpoints (at the end of each epoch but its last), then fine-tuning its first
    with crash_after(monkeypatch, 3):
        run_cli(*args, "--output-dir", "run")
    assert (adapted(tmp_path / "run") / "adaptation.json").is_file()
    loads.clear()
    assert run_cli(*args, "--output-dir", "run") == 0
    assert [kind for kind, _ in loads] == ["classifier"]  # no masked-LM model was loaded again
    assert_same(tmp_path / "run", tmp_path / "reference", expected)


def assert_same(folder: Path, reference: Path, expected: dict) -> None:
    got = record(folder)
    assert (got["metrics"], got["epochs"], got["train"]["final_loss"]) == \
        (expected["metrics"], expected["epochs"], expected["train"]["final_loss"])
    drop = ("seconds", "folder")
    assert {k: v for k, v in got["adaptation"].items() if k not in drop} == \
        {k: v for k, v in expected["adaptation"].items() if k not in drop}
    for name in ("adapt-lm/model/model.safetensors", "model/model.safetensors"):
        a, b = load_file(folder / name), load_file(reference / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("saves", [1, 2], ids=["mid-epoch", "at-epoch-end"])
def test_an_interrupted_adaptation_resumes_exactly(run_cli, tmp_path, monkeypatch, capsys, saves):
    args = [*FINE_TUNE, *ADAPT, "--save-model", "--save-steps", "2", "--max-train-samples", "24"]
    assert run_cli(*args, "--output-dir", "reference") == 0
    expected = record(tmp_path / "reference")
    with crash_after(monkeypatch, saves):  # 3 steps an epoch: the adaptation saves at steps 2, 3 (epoch end), 4, ...
        run_cli(*args, "--output-dir", "run")
    assert [results.step_of(p) for p in results.list_checkpoints(tmp_path / "run" / "adapt-lm")] == [2, 3][:saves]
    capsys.readouterr()
    assert run_cli(*args, "--output-dir", "run") == 0
    assert f"resuming from {Path('run/adapt-lm/checkpoint-')}" in " ".join(capsys.readouterr().err.split())
    assert_same(tmp_path / "run", tmp_path / "reference", expected)


# ---- texts files and the user's own data ------------------------------------

def test_a_texts_file_adapts_a_single_sentence_task(run_cli, tmp_path, glue_dir):
    lines = [line.split("\t")[0] for line in (glue_dir / "SST-2" / "train.tsv").read_text().splitlines()[1:]]
    texts = tmp_path / "reviews.txt"
    texts.write_text("\n\n".join(lines) + "\n  \n")  # blank lines are skipped
    assert run_cli("--task", "sst2", "--num-train-epochs", "1", "--batch-size", "8", "--adapt-lm", str(texts),
                   "--adapt-epochs", "1", "--output-dir", "run") == 0
    out = record(tmp_path / "run")
    assert out["adaptation"]["texts"] == {"train": 46, "heldout": 2}
    assert out["adaptation"]["source"] == out["identity"]["adapt_lm"] == str(texts.resolve())
    assert out["model_name"] == "tiny-bert-dapt-reviews"


def test_every_glue_task_gives_its_training_texts_as_fine_tuning_reads_them(tiny_bert, glue_dir, tmp_path):
    from transformers import AutoTokenizer

    from glue_runner.tasks import glue_tasks

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    for task in [t for t in glue_tasks() if t.train_split]:
        cfg = RunConfig(task=task.name, model=str(tiny_bert), data_dir=glue_dir, cache_dir=tmp_path, adapt_lm="task")
        training, heldout = adapt.load_texts(task, cfg, tokenizer, say=lambda *a, **k: None)
        assert (len(training), len(heldout)) == (46, 2), task.name  # every fixture train split: 48 rows
        assert set(training.column_names) <= {"input_ids", "token_type_ids", "attention_mask", "length"}
        pair = len(task.text_fields) == 2
        assert any(1 in types for types in training["token_type_ids"]) == pair, task.name  # the second text: type 1


def test_own_data_files_adapt_on_their_training_texts(run_cli, tmp_path):
    rows = ["q,a,label"] + [f"what did the {n} see ?,the {n} saw a tree .,{i % 2}" for i, n in
                            enumerate(["cat", "dog", "man", "boy", "girl", "car"] * 4)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join(rows[:9]) + "\n")
    assert run_cli("--task", "qnli", "--train-file", "train.csv", "--validation-file", "dev.csv",
                   "--text-columns", "q,a", "--label-column", "label", "--num-train-epochs", "1", "--adapt-lm", "task",
                   "--adapt-epochs", "1", "--output-dir", "run", data=False) == 0
    assert record(tmp_path / "run")["adaptation"]["texts"] == {"train": 23, "heldout": 1}


# ---- identity and errors -----------------------------------------------------

def test_the_adaptation_settings_are_part_of_the_identity_only_when_adapting(tmp_path):
    plain = RunConfig(task="mrpc", model="m")
    older = {k: v for k, v in plain.identity().items() if not k.startswith("adapt_")}  # written before --adapt-lm
    assert results.record_identity({"identity": older}) == plain.identity()  # such runs still count as done
    tapt = RunConfig(task="mrpc", model="m", adapt_lm="task")
    assert tapt.identity()["adapt_epochs"] == 3.0 and tapt.identity() != plain.identity()
    assert RunConfig(task="mrpc", model="m", adapt_lm="task", adapt_epochs=1).identity() != tapt.identity()
    texts = tmp_path / "t.txt"
    texts.write_text("a\nb\n")
    assert RunConfig(task="mrpc", model="m", adapt_lm=str(texts)).identity()["adapt_lm"] == str(texts.resolve())
    assert (results.model_name(plain), results.model_name(tapt)) == ("m", "m-tapt")


@pytest.mark.parametrize("args, message", [
    (["--task", "ax", "--adapt-lm", "task"], "--adapt-lm: ax has no training texts and nothing to fine-tune; it is "
                                             "predicted with its mnli run's model, so adapt that one: --task mnli,ax"),
    (["--task", "rte", "--adapt-lm", "missing.txt"], "missing.txt does not exist (given as --adapt-lm"),
    (["--task", "rte", "--adapt-lm", "empty.txt"], "empty.txt holds 0 line(s) of text; --adapt-lm needs at least 2"),
    (["--task", "rte", "--adapt-lm", "one.txt"], "one.txt holds 1 line(s) of text"),
    (["--task", "rte", "--adapt-lm", "latin1.txt"], "latin1.txt: not UTF-8 text"),
    (["--task", "rte", "--adapt-lm", "task", "--adapt-epochs", "0"], "--adapt-epochs must be more than 0"),
    (["--task", "rte", "--adapt-lm", "task", "--adapt-learning-rate", "-1"], "--adapt-learning-rate must be more"),
])
def test_bad_adaptation_input_is_one_line_before_anything_loads(run_cli, tmp_path, loads, capsys, args, message):
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "one.txt").write_text("only one line\n\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\nb\n".encode("latin-1"))
    assert run_cli(*args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and err.startswith("error:")
    assert loads == []


def test_ax_is_adapted_through_its_mnli_run(run_cli, monkeypatch):
    planned = []
    monkeypatch.setattr(cli, "run_all", lambda configs, console, grid, shard: planned.extend(configs) or [])
    assert run_cli("--task", "mnli,ax", "--adapt-lm", "task") == 0  # the MNLI run adapts; AX uses its model
    assert [(c.task, c.adapt_lm) for c in planned] == [("mnli", "task"), ("ax", "task")]


def test_too_few_texts_with_words_is_an_error(run_cli, tmp_path, capsys):
    # two lines, but the second is a zero-width space the tokenizer drops: one text with words
    (tmp_path / "texts.txt").write_text("some words here\n\u200b\u200b\n")
    assert run_cli(*FINE_TUNE, "--adapt-lm", str(tmp_path / "texts.txt")) == 2
    assert "1 text(s) with words in them; at least 2 are needed" in capsys.readouterr().err
