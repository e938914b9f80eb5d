"""Precision: bfloat16 autocast by default only where the processor computes it natively, --bf16 and
--no-bf16 to choose, and the run's first line and metrics.json say which ran."""

import json
from pathlib import Path

import pytest
import torch

from glue_runner import train
from glue_runner.config import RunConfig

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--max-train-samples", "16"]


def amp(monkeypatch, native: bool, **settings):
    monkeypatch.setattr(train, "native_bf16", lambda device: native)
    return train.setup_runtime(RunConfig(task="rte", model="m", device="cpu", **settings)).amp_dtype


@pytest.mark.parametrize("native", [True, False])
def test_bf16_by_default_only_where_native(monkeypatch, native):
    assert amp(monkeypatch, native) == (torch.bfloat16 if native else None)
    assert amp(monkeypatch, native, bf16=True) == torch.bfloat16  # asked for: emulated if it must be
    assert amp(monkeypatch, native, bf16=False) is None  # --no-bf16


def test_native_bf16_asks_torch_about_this_cpu():
    expected = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert train.native_bf16(torch.device("cpu")) is expected


@pytest.mark.parametrize("flags, precision", [([], None), (["--bf16"], "bfloat16"), (["--no-bf16"], "float32")])
def test_the_first_line_and_metrics_json_say_which_precision_ran(run_cli, capsys, flags, precision):
    precision = precision or ("bfloat16" if train.native_bf16(torch.device("cpu")) else "float32")
    assert run_cli("--task", "rte", *FAST, *flags) == 0
    first = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("rte · "))
    record = json.loads(next(Path("results").rglob("metrics.json")).read_text())
    assert record["precision"] == precision
    assert f" · cpu · {precision} · " in first


def test_fp16_with_no_bf16_is_not_a_conflict(run_cli):
    from glue_runner.config import check_combinations

    check_combinations({"fp16": True, "bf16": False})
    with pytest.raises(Exception, match="exclude each other"):
        check_combinations({"fp16": True, "bf16": True})
