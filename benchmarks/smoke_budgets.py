"""How many steps a healthy small pretrained encoder needs to leave the baseline on each bundled smoke subset,
and what `--task all --smoke` then shows and costs: the evidence behind tasks/*.yaml's `smoke:` budgets.

    python benchmarks/smoke_budgets.py --model minilm --out smoke-evidence [--epochs 16]

1. Curves: every bundled task trained on its 256-example subset for --epochs epochs (its recipe's batch size,
   so 8 to 16 steps an epoch), the dev subset scored as glue-run schedules it; each score beside the baseline.
2. The smoke itself: `glue-run --task all --smoke --model M` in a fresh results folder, timed: each task's
   steps, score, baseline, verdict and seconds, and the whole command's wall time and exit status.

Each glue-run writes its results under --out; a curve already there is read again, not rerun.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from glue_runner.config import SMOKE_DATA
from glue_runner.tasks import glue_tasks

BUNDLED = [t.name for t in glue_tasks() if t.train_split and (SMOKE_DATA / t.glue_dir).is_dir()]


def glue_run(*argv: str) -> tuple[int, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "glue_runner.cli", *argv])
    return done.returncode, time.perf_counter() - started


def records(results: Path) -> dict[str, dict]:
    return {r["task"]: r for r in (json.loads(p.read_text()) for p in results.rglob("metrics.json"))}


def main_score(metrics: dict, names: list[str]) -> float | None:
    values = [metrics.get(n) for n in names]
    return None if None in values else sum(values) / len(values)


def curves(model: str, out: Path, epochs: int) -> list[str]:
    results = out / "curves"
    lines = ["| task | baseline | steps: main score - baseline |", "|---|---|---|"]
    for task in BUNDLED:
        if task not in records(results):
            glue_run("--task", task, "--model", model, "--data-dir", str(SMOKE_DATA), "--max-train-samples", "256",
                     "--max-eval-samples", "256", "--num-train-epochs", str(epochs), "--results-dir", str(results))
        record = records(results)[task]
        names = [n for n in record["baseline"]["metrics"] if not n.startswith("combined_score")]
        base = main_score(record["baseline"]["metrics"], names)
        steps_per_epoch = record["train"]["steps"] / epochs
        points = [f"{round(e['epoch'] * steps_per_epoch)}: {main_score(e, names) - base:+.3f}"
                  for e in record["epochs"] if main_score(e, names) is not None]
        lines.append(f"| {task} | {base:.3f} | {', '.join(points)} |")
    return lines


def smoke(model: str, out: Path) -> list[str]:
    results = out / "smoke"
    code, seconds = glue_run("--task", "all", "--smoke", "--model", model, "--results-dir", str(results))
    lines = [f"`glue-run --task all --smoke --model {model}`: exit {code}, {seconds:.0f} s wall", "",
             "| task | steps | main score | baseline | verdict | train s |", "|---|---|---|---|---|---|"]
    for task, record in records(results).items():
        verdict = record.get("smoke", {})
        said = "learned" if verdict.get("learned") else "not expected" if not verdict.get("expected", True) else \
            "DID NOT LEARN"
        lines.append(f"| {task} | {record['train'].get('steps', '')} | {verdict.get('scores', '')} | "
                     f"{'; '.join(f'{k} {v:.4f}' for k, v in record.get('baseline', {}).get('metrics', {}).items())} | "
                     f"{said} | {record['train'].get('seconds', 0):.0f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=16)
    args = p.parse_args()
    report = ["## Curves", "", *curves(args.model, args.out, args.epochs), "", "## The smoke", "",
              *smoke(args.model, args.out)]
    (args.out / "report.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
