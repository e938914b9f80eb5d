"""The benchmark script still runs its sides, says whether each beat the baseline, and reports the ratio
(figures live in benchmarks/README.md)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_bench_runs_the_sides_says_who_beat_the_baseline_and_ends_with_the_ratio(tiny_bert, glue_dir, tmp_path):
    pytest.importorskip("accelerate", reason="the Trainer baseline needs pip install -e '.[bench]'")
    # the fixture's SST-2 is learnable: the tiny BERT leaves the 0.5 baseline after 5 of these 10 epochs
    out = subprocess.run([sys.executable, str(BENCH), "--task", "sst2", "--model", str(tiny_bert), "--data-dir",
                          str(glue_dir), "--device", "cpu", "--max-train-samples", "0", "--num-train-epochs", "10",
                          "--batch-size", "8", "--learning-rate", "3e-3", "--json", str(tmp_path / "sides.jsonl")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup_vs_trainer=\d+\.\d+", lines[-1])
    sides = {line.split()[0]: line.split()[1:] for line in lines if re.match(r"(glue-run|trainer)\S* +\w+ +\d", line)}
    # each one's default, and the like-for-like bfloat16 sides (glue-run's default is bfloat16 on a CPU
    # that has it natively: then glue-run-bf16 would repeat it, and is left out)
    native = sides["glue-run"][0] == "bfloat16"
    assert set(sides) == {"glue-run", "trainer", "trainer-bf16"} | (set() if native else {"glue-run-bf16"})
    assert sides["trainer"][0] == "float32" and sides["trainer-bf16"][0] == "bfloat16"
    assert float(sides["glue-run"][1]) > 0 and "GFLOP/s" in out.stdout
    like = "glue-run" if native else "glue-run-bf16"
    assert any(re.fullmatch(rf"like for like, bfloat16: {like}/trainer-bf16 \d+\.\d+", line) for line in lines)
    # every side learned here, and each row and the summary say so against the baseline's score
    assert "baseline: the most frequent training label" in out.stdout
    assert all("beat it" in " ".join(row) for row in sides.values()), out.stdout
    assert all(re.search(rf"^{side}: .*beat the baseline in 1 of 1 run", out.stdout, re.M) for side in sides)
    figures = [json.loads(line) for line in (tmp_path / "sides.jsonl").read_text().splitlines()]
    assert {f["side"] for f in figures} == set(sides) and all(f["beat_baseline"] for f in figures)
    assert all(f["baseline_score"] == 0.5 and f["score"] > 0.5 and f["steady_samples_per_second"] > 0 for f in figures)


def test_bench_refuses_sides_it_does_not_know_or_cannot_run(tiny_bert, glue_dir):
    for sides, said in (("glue-run,warp-drive", "warp-drive not known"), ("glue-run-fp16", "needs --device cuda")):
        out = subprocess.run([sys.executable, str(BENCH), "--task", "sst2", "--model", str(tiny_bert), "--data-dir",
                              str(glue_dir), "--sides", sides], capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and said in out.stderr, out.stderr
