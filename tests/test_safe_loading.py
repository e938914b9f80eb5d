"""Safe loading: no model code runs without --trust-remote-code, pickled weights that hold more
than tensors are refused, names cannot write outside the results folder, task files are data."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from glue_runner import data, results, tasks
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError
from glue_runner.model import load_model


class RunsCode:
    """Unpickling this runs a command: what a malicious pytorch_model.bin does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_custom_model_code_needs_the_flag(tiny_bert, tmp_path):
    model = shutil.copytree(tiny_bert, tmp_path / "remote")
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig"})
    (model / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    (model / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    with pytest.raises(GlueRunnerError, match="custom code.*pass --trust-remote-code only if you trust"):
        load_model(data.get_task("sst2"), RunConfig(task="sst2", model=str(model)))
    assert not marker.exists()


def test_trust_remote_code_is_off_unless_asked(run_cli, monkeypatch):
    seen = []
    library = sys.modules["transformers"]  # the module as glue-run imports it now
    real = library.AutoConfig

    class Spy:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            seen.append(kwargs["trust_remote_code"])
            return real.from_pretrained(*args, **kwargs)

    monkeypatch.setattr(library, "AutoConfig", Spy)
    assert run_cli("--task", "rte", "--num-train-epochs", "1") == 0
    assert run_cli("--task", "rte", "--num-train-epochs", "1", "--trust-remote-code", "--output-dir", "b") == 0
    assert seen == [False, True]


def test_pickled_weights_that_run_code_are_refused(tiny_bert, tmp_path):
    model = shutil.copytree(tiny_bert, tmp_path / "pickled")
    weights = load_file(model / "model.safetensors")
    (model / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    torch.save({**weights, "payload": RunsCode(marker)}, model / "pytorch_model.bin")
    with pytest.raises(GlueRunnerError, match="pickled weights .* not loaded; use a model with model.safetensors"):
        load_model(data.get_task("sst2"), RunConfig(task="sst2", model=str(model)))
    assert not marker.exists()


def test_safetensors_are_preferred_over_a_pickle_beside_them(tiny_bert, tmp_path):
    model = shutil.copytree(tiny_bert, tmp_path / "both")
    marker = tmp_path / "code-ran"
    torch.save({"payload": RunsCode(marker)}, model / "pytorch_model.bin")
    load_model(data.get_task("sst2"), RunConfig(task="sst2", model=str(model)))
    assert not marker.exists()


@pytest.mark.parametrize("name, folder", [("../../x", "x"), ("bert-base-uncased", "bert-base-uncased"),
                                          ("google/bert_uncased_L-2_H-128_A-2", "google__bert_uncased_L-2_H-128_A-2"),
                                          ("..", "unnamed"), ("/no/such/model", "no__such__model"), ("a/../../b", "a__..__..__b"),
                                          ("C:\\evil", "C_evil")])
def test_model_names_become_one_folder_inside_results(tmp_path, name, folder):
    cfg = RunConfig(task="sst2", model=name, seed=1, results_dir=tmp_path)
    assert results.run_folder(cfg, "sst2") == tmp_path / "runs" / folder / "sst2-seed1"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_safe_name_is_always_a_single_harmless_component(name):
    safe = results.safe_name(name)
    assert safe not in ("", ".", "..") and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert (Path("/results/runs") / safe).resolve().parent == Path("/results/runs")


def test_model_name_flag_cannot_escape_the_results_folder(run_cli, tmp_path):
    assert run_cli("--task", "rte", "--num-train-epochs", "1", "--model-name", "../../evil") == 0
    assert (tmp_path / "results" / "runs" / "evil" / "rte-seed42" / "metrics.json").exists()
    assert not (tmp_path.parent / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_task_files_are_data_not_code(tmp_path):
    marker = tmp_path / "code-ran"
    evil = f"name: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(GlueRunnerError, match="evil.yaml is not plain YAML data .*python/object/apply:os.system"):
        tasks._parse(evil, "evil.yaml")
    assert not marker.exists()
