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
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup_vs_trainer=\d+\.\d+", lines[-1])
    sides = {line.split()[0]: line.split()[1:] for line in lines if line.startswith(("glue-run", "trainer"))}
    # each one's default, and on the CPU bfloat16 against the Trainer's --bf16
    assert set(sides) == {"glue-run", "trainer", "glue-run-bf16", "trainer-bf16"}
    assert sides["trainer"][0] == "float32" and sides["trainer-bf16"][0] == sides["glue-run-bf16"][0] == "bfloat16"
    assert float(sides["glue-run"][2]) > 0 and "GFLOP/s" in "\n".join(lines)
    assert any(re.fullmatch(r"like for like, bfloat16: glue-run/trainer \d+\.\d+", line) for line in lines)
