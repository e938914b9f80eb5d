"""Do the defaults learn on a newcomer's own data? The evidence behind glue-run's default learning rate and epochs.

    python benchmarks/defaults_evidence.py --shared ../shared --out evidence [--model minilm]
        [--sizes 300,2000] [--seeds 1,2,3] [--tasks goemotions,sst2,mrpc,stsb] [--settings defaults,run_glue,grid]
        [--grid 1e-4:3,2e-4:3] [--report-only]

Builds four tasks of your own from the real data in ../shared, as a user would bring them (CSV files
with a header, label names as text), at each training size: GoEmotions comments with exactly one
label as a 28-class task, SST-2 as a sentiment CSV, MRPC as a pair CSV, STS-B as a regression CSV.
The training rows are a seeded sample of each corpus's training file, three of every label first (the
smaller size a subset of the larger); every size is scored on the same 500 dev rows, a seeded sample of the dev file (MRPC: all 408).

Then trains `--model` on each, for each seed, with:

    defaults   no training flag: what a newcomer's first run does
    run_glue   --learning-rate 2e-5 --num-train-epochs 3: run_glue.py's defaults (glue-run's before)
    grid       the --grid points (learning rate:epochs), with run_glue's

one `glue-run --seeds ...` process per setting (a finished run is not redone, so an interrupted
evidence run continues); a grid point that is what the defaults chose is the defaults' run. Prints one Markdown table: per task and size the trivial
baseline, each setting's mean ± std over seeds of the task's score and seconds per run, and the
grid's best point, then every setting's per-seed scores; and writes both to <out>/evidence.md, every
run's numbers to evidence.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEV_ROWS = 500
# the score each task is read by (the mean of several would hide which moved)
SCORE = {"goemotions": "f1_macro", "sst2": "accuracy", "mrpc": "accuracy", "stsb": "pearson"}


# ---- the data, as a user would bring it --------------------------------------

def read_tsv(path: Path, header: bool = True) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:] if header else rows


def corpora(shared: Path) -> dict[str, tuple[list[str], list[list[str]], list[list[str]]]]:
    """task -> (CSV header, training rows, dev rows), the label last, as text."""
    glue, emotions = shared / "glue_data", shared / "goemotions"
    names = (emotions / "labels.txt").read_text(encoding="utf-8").split()

    def single(rows):  # comments with exactly one label, the label by name
        return [[text, names[int(labels)]] for text, labels, _ in rows if "," not in labels]

    def sst(rows):
        return [[sentence, ["negative", "positive"][int(label)]] for sentence, label in rows]

    def mrpc(rows):
        return [[a, b, ["different", "equivalent"][int(label)]] for label, _, _, a, b in rows]

    def stsb(rows):
        return [[row[7], row[8], row[-1]] for row in rows]

    return {
        "goemotions": (["text", "label"], single(read_tsv(emotions / "train.tsv", False)),
                       single(read_tsv(emotions / "dev.tsv", False))),
        "sst2": (["sentence", "label"], sst(read_tsv(glue / "SST-2/train.tsv")), sst(read_tsv(glue / "SST-2/dev.tsv"))),
        "mrpc": (["sentence1", "sentence2", "label"], mrpc(read_tsv(glue / "MRPC/train.tsv")),
                 mrpc(read_tsv(glue / "MRPC/dev.tsv"))),
        "stsb": (["sentence1", "sentence2", "score"], stsb(read_tsv(glue / "STS-B/train.tsv")),
                 stsb(read_tsv(glue / "STS-B/dev.tsv"))),
    }


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Written only when its content changes: a second evidence process (or --report-only) beside a running
    one must not rewrite the file that one's glue-run is reading."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    content = text.getvalue().encode("utf-8")
    if not path.exists() or path.read_bytes() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return path


def build(shared: Path, out: Path, tasks: list[str], sizes: list[int]) -> dict[tuple[str, int], tuple[Path, Path]]:
    """(task, size) -> (training file, dev file)."""
    files, found = {}, corpora(shared)
    for task in tasks:
        header, train, dev = found[task]
        order = labels_first(train, random.Random(0).sample(range(len(train)), len(train)))[:max(sizes)]
        dev_file = write_csv(out / "data" / task / "dev.csv", header,
                             [dev[i] for i in sorted(random.Random(1).sample(range(len(dev)), min(DEV_ROWS, len(dev))))])
        for size in sizes:
            files[task, size] = (write_csv(out / "data" / task / f"train-{size}.csv", header,
                                           [train[i] for i in sorted(order[:size])]), dev_file)
    return files


def labels_first(rows: list[list[str]], order: list[int], each: int = 3) -> list[int]:
    """`order` with the first `each` rows of every label moved to the front: a set of a few hundred holds
    every label, as a user's own labelled data does (GoEmotions' rarest single label is 0.2% of it). Each
    size is then the first N of this order, so the smaller set is part of the larger."""
    if rows[0][-1].replace(".", "").isdigit():  # a score, not a label
        return order
    seen, front = {}, []
    for i in order:
        if seen.get(rows[i][-1], 0) < each:
            seen[rows[i][-1]] = seen.get(rows[i][-1], 0) + 1
            front.append(i)
    chosen = set(front)
    return front + [i for i in order if i not in chosen]


# ---- the runs -----------------------------------------------------------------

def settings(kinds: list[str], grid: list[tuple[float, float]]) -> dict[str, list[str]]:
    """name -> its training flags, the defaults first: a grid point that turns out to be what the defaults
    chose is that same run, and is not run twice."""
    chosen = {"defaults": []} if "defaults" in kinds else {}
    if "run_glue" in kinds:
        chosen["run_glue"] = ["--learning-rate", "2e-5", "--num-train-epochs", "3"]
    for rate, epochs in grid if "grid" in kinds else []:
        chosen[f"lr {rate:g}, {epochs:g} epochs"] = ["--learning-rate", f"{rate:g}", "--num-train-epochs", f"{epochs:g}"]
    return chosen


def run_setting(model: str, task: str, size: int, files: tuple[Path, Path], seeds: list[int], name: str,
                flags: list[str], out: Path, done: list[dict], report_only: bool = False) -> list[dict]:
    """One glue-run process for the setting's seeds (a finished run is not redone); its rows. With
    `report_only`, a setting not finished is left out instead of run."""
    same = [r for r in done if (r["task"], r["size"], r["setting"]) == (task, size, "defaults")
            and flags and flags == ["--learning-rate", f"{r['learning_rate']:g}", "--num-train-epochs", f"{r['epochs']:g}"]]
    if same:  # the defaults chose this grid point: the same run
        return [{**r, "setting": name, "same_as": "defaults"} for r in same]
    folder = out / "runs" / task / str(size) / (name.replace(" ", "").replace(",", "_") or "defaults")
    records = sorted(folder.glob("runs/*/*/metrics.json"))
    if report_only and (len(records) < len(seeds) or not (folder / "wall_seconds").exists()):
        return []
    if len(records) < len(seeds):
        command = [sys.executable, "-m", "glue_runner.cli", "--model", model, "--train-file", str(files[0]),
                   "--validation-file", str(files[1]), "--seeds", ",".join(map(str, seeds)),
                   "--results-dir", str(folder), *flags]
        if task == "stsb":
            command += ["--problem-type", "regression", "--label-column", "score"]
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr[-3000:]}")
        (folder / "wall_seconds").write_text(f"{time.perf_counter() - started:.1f}\n")
        records = sorted(folder.glob("runs/*/*/metrics.json"))
    seconds = float((folder / "wall_seconds").read_text()) / len(seeds)  # the process's wall time, per seed
    rows = []
    for path in records:
        record = json.loads(path.read_text())
        trained = record.get("chosen", {})
        rows.append({"task": task, "size": size, "setting": name, "seed": record["seed"],
                     "score": record["metrics"][SCORE[task]],
                     "baseline": record.get("baseline", {}).get("metrics", {}).get(SCORE[task]),
                     "learning_rate": trained.get("learning_rate", record["config"]["learning_rate"]),
                     "epochs": trained.get("num_train_epochs", record["config"]["num_train_epochs"]),
                     "train_seconds": record["train"]["seconds"], "seconds": seconds})
    return rows


# ---- the table ------------------------------------------------------------------

def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| task (score) | train size | baseline | defaults | run_glue (2e-5, 3 ep) | grid's best | "
             "defaults' settings | s/run (defaults, run_glue) |", "|---|---|---|---|---|---|---|---|"]
    for task, size in dict.fromkeys((r["task"], r["size"]) for r in rows):
        mine = [r for r in rows if (r["task"], r["size"]) == (task, size)]

        def scores(setting):
            return [r["score"] for r in mine if r["setting"] == setting]

        def seconds(setting):
            found = [r["seconds"] for r in mine if r["setting"] == setting]
            return f"{statistics.fmean(found):.0f}" if found else "–"

        grid = {r["setting"] for r in mine if r["setting"].startswith("lr ") or r["setting"] == "run_glue"}
        best = max(grid, key=lambda s: statistics.fmean(scores(s)), default=None)
        chosen = next((r for r in mine if r["setting"] == "defaults"), None)
        lines.append(" | ".join([
            f"| {task} ({SCORE[task]})", str(size), f"{mine[0]['baseline']:.3f}" if mine[0]["baseline"] is not None
            else "–", mean_std(scores("defaults")) if scores("defaults") else "–",
            mean_std(scores("run_glue")) if scores("run_glue") else "–",
            f"{mean_std(scores(best))} ({best})" if best else "–",
            f"lr {chosen['learning_rate']:g}, {chosen['epochs']:g} epochs" if chosen else "–",
            f"{seconds('defaults')}, {seconds('run_glue')} |"]))
    return "\n".join(lines)


def points(rows: list[dict]) -> str:
    """Every setting run, per task and size: mean ± std, each seed's score, and training seconds per run."""
    lines = ["| task | train size | setting | mean ± std | per seed | train s/run |", "|---|---|---|---|---|---|"]
    for task, size, setting in dict.fromkeys((r["task"], r["size"], r["setting"]) for r in rows):
        mine = sorted((r for r in rows if (r["task"], r["size"], r["setting"]) == (task, size, setting)),
                      key=lambda r: r["seed"])
        same = " (the defaults' runs)" if mine[0].get("same_as") else ""
        seeds = ", ".join(f"{r['score']:.3f}" for r in mine)
        lines.append(f"| {task} | {size} | {setting}{same} | {mean_std([r['score'] for r in mine])} | {seeds} | "
                     f"{statistics.fmean(r['train_seconds'] for r in mine):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--out", type=Path, default=Path("evidence"))
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--sizes", default="300,2000")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--tasks", default=",".join(SCORE))
    parser.add_argument("--settings", default="defaults,run_glue,grid")
    parser.add_argument("--grid", default="1e-4:3,2e-4:3,1e-4:10",
                        help="learning rate:epochs points beside run_glue's (2e-5:3)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: tabulate the settings already finished under --out (each size may have "
                             "run its own grid)")
    args = parser.parse_args(argv)
    tasks, sizes = args.tasks.split(","), [int(s) for s in args.sizes.split(",")]
    files = build(args.shared, args.out, tasks, sizes)
    grid = [(float(rate), float(epochs)) for rate, epochs in (point.split(":") for point in args.grid.split(","))]
    seeds, rows = [int(s) for s in args.seeds.split(",")], []
    for size in sizes:
        for task in tasks:
            for name, flags in settings(args.settings.split(","), grid).items():
                found = run_setting(args.model, task, size, files[task, size], seeds, name, flags, args.out, rows,
                                    args.report_only)
                rows += found
                if found:
                    print(json.dumps(found), flush=True)
    text = table(rows) + "\n\n" + points(rows)
    print(text)
    (args.out / "evidence.md").write_text(text + "\n")
    (args.out / "evidence.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
