"""The model gets only the inputs its tokenizer makes and its forward takes; a damaged weights file is one line."""

import json
import shutil
from pathlib import Path


def single_type_model(tiny_bert: Path, folder: Path, *, tokenizer_types: bool) -> Path:
    """A RoBERTa-style checkpoint of the tiny BERT's vocabulary: one token type; its tokenizer makes
    token types only if tokenizer_types (a mismatched tokenizer)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_bert)
    config.type_vocab_size = 1
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    if not tokenizer_types:  # as RoBERTa's tokenizer_config.json says it
        settings = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**settings,
                                                                  "model_input_names": ["input_ids", "attention_mask"]}))
    return folder


def test_a_model_without_token_types_after_a_bert_of_the_same_vocabulary(run_cli, tiny_bert, tmp_path):
    """The tokenization cache once served the BERT run's token types to it: IndexError in the embedding."""
    assert run_cli("--task", "mrpc", "--num-train-epochs", "1", "--max-train-samples", "16") == 0
    one_type = single_type_model(tiny_bert, tmp_path / "one-type", tokenizer_types=False)
    assert run_cli("--task", "mrpc", "--num-train-epochs", "1", "--max-train-samples", "16",
                   "--model", str(one_type), model=False) == 0


def test_a_token_type_the_model_has_no_embedding_for_is_refused(run_cli, tiny_bert, tmp_path, capsys):
    mismatched = single_type_model(tiny_bert, tmp_path / "mismatched", tokenizer_types=True)
    assert run_cli("--task", "mrpc", "--num-train-epochs", "1", "--model", str(mismatched), model=False) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the tokenizer makes token type 1 but" in err and "type_vocab_size" in err and "Traceback" not in err
    # single sentences make one type only: the same model and tokenizer train on SST-2
    assert run_cli("--task", "sst2", "--num-train-epochs", "1", "--max-train-samples", "16",
                   "--model", str(mismatched), model=False) == 0


def test_a_weights_file_cut_short_is_one_line(run_cli, tiny_bert, tmp_path, capsys):
    cut = shutil.copytree(tiny_bert, tmp_path / "cut")
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    assert run_cli("--task", "rte", "--num-train-epochs", "1", "--model", str(cut), model=False) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "model.safetensors) is damaged or cut short" in err and "download or copy it again" in err
    assert "Traceback" not in err and "SafetensorError" not in err.split("(")[0]


def test_the_tokenization_cache_key_holds_what_the_tokenizer_returns(tiny_bert):
    from transformers import AutoTokenizer

    from glue_runner.data import tokenizer_fingerprint

    bert = AutoTokenizer.from_pretrained(tiny_bert)
    roberta_style = AutoTokenizer.from_pretrained(tiny_bert)
    roberta_style.model_input_names = ["input_ids", "attention_mask"]
    assert tokenizer_fingerprint(bert) != tokenizer_fingerprint(roberta_style)
    assert json.dumps(tokenizer_fingerprint(bert))  # a plain string
