"""The benchmark script still runs both sides and reports the ratio (figures live in benchmarks/README.md)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_bench_runs_both_sides_and_ends_with_the_ratio(tiny_bert, glue_dir, tmp_path):
    pytest.importorskip("accelerate", reason="the Trainer baseline needs pip install -e '.[bench]'")
    out = subprocess.run([sys.executable, str(BENCH), "--task", "rte", "--model", str(tiny_bert), "--data-dir",
                          str(glue_dir), "--device", "cpu", "--max-train-samples", "16", "--batch-size", "8"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup_vs_trainer=\d+\.\d+", lines[-1])
    assert any(line.startswith("glue-run") for line in lines) and any(line.startswith("trainer") for line in lines)
