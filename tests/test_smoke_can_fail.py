"""--smoke can fail: on a bundled subset, in the task's own budget, a healthy pretrained encoder learns and exits 0,
and a broken one exits 3 naming the task, its score and the baseline's. The broken cases are made in code from
the packaged MiniLM, the healthy model (a cut-down encoder that still learns in the budget would be faster; the
first two of its layers do not): its weights initialised at random, its tokenizer given another vocabulary, and
the training labels shuffled. SST-2, the cheapest task expected to learn: short sentences, 64 steps."""

import random
import shutil
from pathlib import Path

import pytest

from glue_runner.config import SMOKE_DATA

TASK = "sst2"


def random_weights(model: Path, folder: Path) -> Path:
    import torch
    import transformers

    shutil.copytree(model, folder)
    torch.manual_seed(0)
    transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(model)).save_pretrained(folder)
    return folder


def other_vocabulary(model: Path, folder: Path) -> Path:
    """The same model with a tokenizer whose word pieces have other ids: every word reaches another embedding."""
    import transformers

    shutil.copytree(model, folder)
    vocab = (model / "vocab.txt").read_text(encoding="utf-8").splitlines()
    special, words = vocab[:1000], vocab[1000:]  # [PAD], [UNK], [CLS], [SEP], [MASK] and the unused slots first
    random.Random(0).shuffle(words)
    (folder / "vocab.txt").write_text("\n".join(special + words) + "\n", encoding="utf-8")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    transformers.BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    return folder


def shuffled_labels(folder: Path) -> Path:
    """The bundled subsets with SST-2's training labels shuffled among its rows."""
    shutil.copytree(SMOKE_DATA, folder)
    lines = (folder / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    labels = [row[-1] for row in rows]
    random.Random(0).shuffle(labels)
    (folder / "SST-2" / "train.tsv").write_text(
        "\n".join([lines[0], *("\t".join([*row[:-1], label]) for row, label in zip(rows, labels))]) + "\n",
        encoding="utf-8")
    return folder


def smoke(run_cli, model: Path, *flags: str) -> int:
    return run_cli("--task", TASK, "--smoke", "--model", str(model), *flags, data=False, model=False)


def test_a_small_pretrained_encoder_learns_in_the_budget(run_cli, minilm, capsys):
    assert smoke(run_cli, minilm) == 0
    assert f"smoke: {TASK} learned" in capsys.readouterr().err


@pytest.mark.parametrize("broken", ["random weights", "another vocabulary", "shuffled labels"])
def test_a_broken_model_or_data_fails_the_smoke(run_cli, minilm, tmp_path, capsys, broken):
    model, flags = minilm, []
    if broken == "random weights":
        model = random_weights(minilm, tmp_path / "random")
    elif broken == "another vocabulary":
        model = other_vocabulary(minilm, tmp_path / "shuffled-vocabulary")
    else:
        flags = ["--data-dir", str(shuffled_labels(tmp_path / "glue"))]
    assert smoke(run_cli, model, *flags) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert f"smoke: did not learn: {TASK} (validation " in err and "against 0.5" in err
