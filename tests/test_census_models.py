"""What the census's models and damaged groups (tests/hostile_input_census.py) found: a model family
refused that trains, damaged model folders that ended in a traceback, trained on nothing, or said
one line that named neither the file nor the fix. Each pinned here with the census's own setup."""

import shutil

import pytest

import hostile_input_census as census
from glue_runner import data
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError
from glue_runner.model import load_model

FAST = ["--num-train-epochs", "1", "--max-train-samples", "16", "--max-eval-samples", "8"]


def test_a_model_without_token_type_embeddings_trains_on_pairs(run_cli, tiny_bert, tmp_path):
    """DeBERTa-v3's type_vocab_size is 0 and its tokenizer still makes token types, which the model
    ignores: it was refused as a tokenizer making a type the model has no embedding for."""
    deberta = census.tiny_family(tmp_path / "models", "deberta-v2", tiny_bert)
    assert run_cli("--task", "mrpc", *FAST, "--model", str(deberta), model=False) == 0


# The census's damaged folders that were holes, and what was wrong before: each now one line naming
# the file and the fix (the census's `mentions` of the case)
HOLES = {
    "tokenizer.json holds another file (config.json copied over it)": "KeyError: 'added_tokens' traceback",
    "tokenizer.json cut short": "a JSONDecodeError's words, no file",
    "tokenizer.json is binary (not UTF-8)": "a UnicodeDecodeError's words, no file",
    "tokenizer_config.json is not JSON": "a JSONDecodeError's words, no file",
    "every tokenizer file missing": "trained with a 5-token vocabulary: every word [UNK]",
    "config.json missing": "asked for a model_type key in the missing file",
    "config.json holds a JSON list": "asked for a model_type key",
    "config.json is not JSON (cut short)": "no fix",
    "config.json without model_type": "no fix",
    "config.json with a model_type this transformers does not know": "neither the file nor the fix",
    "weights of another shape (config.json's hidden_size changed after saving)": "'see the above report', not shown",
    "pytorch_model.bin only, cut to half": "[Errno 22] Invalid argument",
    "model.safetensors missing": "no fix",
}


@pytest.mark.parametrize("name", list(HOLES))
def test_a_damaged_model_folder_is_one_line_naming_the_file_and_the_fix(tiny_bert, tmp_path, name):
    case = next(c for c in census.damaged_cases([]) if c.name == name)
    shutil.copytree(tiny_bert, tmp_path / "model")
    case.setup(tmp_path)
    with pytest.raises(GlueRunnerError) as e:
        load_model(data.get_task("sst2"), RunConfig(task="sst2", model=str(tmp_path / "model")))
    message = str(e.value)
    assert "\n" not in message and all(m.lower() in message.lower() for m in case.mentions), message


def test_an_empty_model_is_named_as_such(tiny_bert):
    with pytest.raises(GlueRunnerError, match="--model is empty; give a model folder"):
        load_model(data.get_task("sst2"), RunConfig(task="sst2", model=""))
