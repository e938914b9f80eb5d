"""benchmarks/gpu_check.py between GPU loans: its dry run goes through every step on the CPU, and its
verdicts can fail. (What it measures on a GPU is in benchmarks/README.md.)"""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_dry_run_goes_through_every_step_and_every_path(tmp_path):
    pytest.importorskip("accelerate", reason="bench.py's Trainer side needs pip install -e '.[bench]'")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600)
    log = (out / "check.log").read_text() if (out / "check.log").is_file() else ""
    assert done.returncode == 0, done.stdout[-3000:] + log[-5000:]
    summary = (out / "summary.md").read_text()
    for step in ("env", "speed", "paths", "fidelity"):
        assert re.search(rf"\| {step} \| \d+ \| \d+ \| finished \|", summary), summary

    # the device tool brings back at most 8 files, named in letters, digits, '.', '_' and '-'
    files = [p.name for p in out.iterdir()]
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files), files
    assert json.loads((out / "env.json").read_text())["datasets"] != "missing"

    speed = {s["side"]: s for s in lines(out / "speed.jsonl")}
    assert set(speed) == {"glue-run", "trainer"}
    assert all(s["train_samples_per_second"] > 0 and s["steady_samples_per_second"] > 0 for s in speed.values())
    assert "x Trainer" in summary and "beat the baseline" in summary

    paths = {p["path"]: p for p in lines(out / "paths.jsonl")}
    assert list(paths) == ["bf16", "cuda-graphs", "fp16-skip", "checkpoint-resume", "do-predict", "predict",
                           "auto-batch-size", "auto-batch-size-graphs"]
    assert paths["bf16"]["ok"] and paths["bf16"]["precision"] == "bfloat16"
    # on the CPU the graphs path runs eagerly and says so; the shapes it saw are still counted
    assert paths["cuda-graphs"]["ok"] is None and paths["cuda-graphs"]["captures"] == 0
    assert len(paths["cuda-graphs"]["training_shapes"]) >= 2 and sum(paths["cuda-graphs"]["training_shapes"].values()) == 8
    fp16 = paths["fp16-skip"]  # the scaler skipped the poisoned step and halved its scale
    assert fp16["ok"] and fp16["precision"] == "float16" and fp16["step_3_skipped"] is True
    assert fp16["scale_after"] == fp16["scale_before"] / 2
    resume = paths["checkpoint-resume"]  # on the CPU, exact
    assert resume["ok"] and resume["stopped_at"] and resume["resumed_minus_reference"] == 0.0
    assert paths["do-predict"]["ok"] and paths["do-predict"]["test_rows"] == 256
    assert paths["predict"]["ok"] in (True, None)  # None while glue-run has no predict command
    auto = paths["auto-batch-size"]
    assert auto["ok"] and any("trying 128 per pass" in line for line in auto["said"])

    fidelity = lines(out / "fidelity.jsonl")
    assert {(r["task"], r["setting"]) for r in fidelity} == {(t, s) for t in ("rte", "stsb")
                                                              for s in ("glue-run", "run_glue")}
    assert all(r["exit"] == 0 and "score" in r and "baseline" in r for r in fidelity)
    assert "Verdict" in (out / "compare.md").read_text()


def test_the_verdicts_can_fail():
    check = load_script()
    seen = {"16x16": 4, "16x32": 2, "16x64": 1}  # shape -> training steps; the one-off is only warmed up
    assert check.graphs_verdict(seen, captures=4)
    assert not check.graphs_verdict({"16x16": 8}, captures=2)  # one bucket is not several
    assert not check.graphs_verdict(seen, captures=0)  # graphs skipped: every step ran eagerly
    assert not check.graphs_verdict(seen, captures=1)  # a shape that came again was not captured
    assert not check.graphs_verdict(seen, captures=40)  # re-recorded instead of replayed
    assert check.resume_verdict(resumed=0.0, noise=0.0)
    assert check.resume_verdict(resumed=2e-6, noise=1e-6)  # no further off than the GPU's own noise
    assert not check.resume_verdict(resumed=1e-6, noise=0.0)  # the device is exact, the resume is not
    assert not check.resume_verdict(resumed=1e-3, noise=1e-6)
    finished, cut = check.StepRun("paths", 100, 50, "finished"), check.StepRun("fidelity", 100, 100, "cut by its budget")
    assert check.passed([finished], [{"ok": True}, {"ok": None}])
    assert not check.passed([finished], [{"ok": True}, {"ok": False}])
    assert not check.passed([finished, cut], [{"ok": True}])


def test_prepare_s_pieces_fit_what_travels(tmp_path, tiny_bert, glue_dir):
    """The float16 export halves the weights and keeps what loading needs; the data is the five tasks' train
    and dev files; the size counted is the repository's plus the assets'. (The wheels need the network.)"""
    check = load_script()
    sys.path.insert(0, str(SCRIPT.parent))
    from export_fp16 import export

    export(tiny_bert, tmp_path / "minilm-fp16")
    check.copy_data(glue_dir, tmp_path / "glue_data")
    assert sorted(p.relative_to(tmp_path / "glue_data").as_posix() for p in (tmp_path / "glue_data").rglob("*.tsv")) == \
        sorted(f"{t}/{f}" for t in ("CoLA", "MRPC", "RTE", "SST-2", "STS-B") for f in ("dev.tsv", "train.tsv"))
    halved = (tmp_path / "minilm-fp16" / "model.safetensors").stat().st_size
    assert halved < 0.6 * (tiny_bert / "model.safetensors").stat().st_size
    assert {"config.json", "vocab.txt", "tokenizer_config.json"} <= {p.name for p in (tmp_path / "minilm-fp16").iterdir()}
    assert check.travel_size(tmp_path) > check.folder_size(tmp_path) > 0
    command = check.device_command(Path(".device/gpu-check"))
    assert command.startswith("python3 -m pip install") and "--assets .device/gpu-check --out $OUT" in command
    assert len(command) < 2000  # the device tool's limit on a command


@pytest.mark.parametrize("answer, ok", [("the run's", True), ("always negative", False)])
def test_the_predict_path_checks_a_predict_command_against_the_run(tmp_path, monkeypatch, answer, ok):
    """glue-run predict is being added; until it lands the path says n/a, so here a stand-in with its
    interface (--model, --input, --output) answers, once as the run did and once wrongly."""
    import argparse
    import csv

    from glue_runner import cli

    check = load_script()
    ctx = check.Context("cpu", tmp_path, tmp_path / "work", tmp_path, tmp_path, 0.0, True)
    run = ctx.work / "paths" / "do-predict" / "runs" / "tiny" / "sst2-seed1"
    (run / "model").mkdir(parents=True)
    said = {i: "positive" if i % 3 else "negative" for i in range(64)}  # the run scored the first 64
    (run / "predictions_validation.tsv").write_text(
        "index\tprediction\tlabel\n" + "".join(f"{i}\t{p}\tpositive\n" for i, p in said.items()))

    def predict(argv, console):
        p = argparse.ArgumentParser(prog="glue-run predict")
        for name in ("--model", "--input", "--output", "--device"):
            p.add_argument(name)
        args = p.parse_args(argv)
        with open(args.input, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        with open(args.output, "w", encoding="utf-8", newline="") as f:
            out = csv.writer(f)
            out.writerow(["sentence", "label", "probability"])
            for i, row in enumerate(rows):
                label = said.get(i, "positive") if answer == "the run's" else "negative"
                out.writerow([row["sentence"], label, 0.9])
        return 0

    monkeypatch.setitem(cli.SUBCOMMANDS, "predict", predict)
    figures = check.path_predict(ctx, {})
    assert figures["ok"] is ok and figures["rows"] == figures["expected_rows"] == 256, figures
    assert figures["label_column"] == "label"
    assert figures["agreement_with_the_run"] == (1.0 if ok else sum(p == "negative" for p in said.values()) / 64)
