"""glue-run predict against transformers' pipeline: the same saved model, the same new rows, side by side.

    python benchmarks/predict_bench.py [--shared ../shared] [--workdir /tmp/predict-bench] [--rows 100000]
        [--train-rows 2000] [--memory-rows 10000] [--short-pipeline]

1. A 3-class task of your own from GoEmotions (../shared/goemotions): the comments whose only emotion is
   anger, joy or sadness, as `text,emotion` CSVs (train: the first --train-rows of train.tsv's, dev: dev.tsv's).
2. `glue-run --model minilm` trains it with the defaults and --save-model.
3. --rows new rows: every GoEmotions comment (train, dev, test), then SST-2's training phrases, as `id,text`.
4. Each side in its own process under /usr/bin/time -v, one after the other: `glue-run predict` (as it
   runs by default: bfloat16 where the CPU computes it natively), the same on the first --memory-rows rows
   (its peak memory should not grow with the rows), `glue-run predict --no-bf16` (float32, as the pipeline
   computes), and `pipeline("text-classification", model=<the saved model>, truncation=True, top_k=None)`
   with its default batching, fed the rows one by one from the CSV, writing each prediction as it comes
   (--short-pipeline: on the first --memory-rows rows only, where all of them would take it too long; the
   ratio is then against glue-run predict on those same rows).

It prints the CPU, the load before and after, and per side: wall seconds (model loading included),
rows/s, peak resident memory (MiB) and how many predicted labels agree with the pipeline's.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

CLASSES = {"2": "anger", "17": "joy", "25": "sadness"}  # GoEmotions' label ids (labels.txt)


def goemotions_rows(path: Path) -> list[tuple[str, str]]:
    """(text, label ids) per line of a GoEmotions TSV (raw text, no quoting, no header)."""
    with open(path, encoding="utf-8", newline="") as f:
        return [(row[0], row[1]) for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if len(row) >= 2]


def make_data(shared: Path, workdir: Path, rows: int, train_rows: int, memory_rows: int) -> tuple[Path, Path]:
    emotions = shared / "goemotions"
    for split, source, limit in (("train", "train.tsv", train_rows), ("dev", "dev.tsv", None)):
        kept = [(text, CLASSES[ids]) for text, ids in goemotions_rows(emotions / source) if ids in CLASSES][:limit]
        with open(workdir / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("text", "emotion"), *kept])
    texts = [text for split in ("train", "dev", "test") for text, _ in goemotions_rows(emotions / f"{split}.tsv")]
    with open(shared / "glue_data" / "SST-2" / "train.tsv", encoding="utf-8", newline="") as f:
        texts += [row[0] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][1:]
    if len(texts) < rows:
        sys.exit(f"only {len(texts):,} texts in {shared}; ask for fewer --rows")
    for name, n in (("new.csv", rows), ("new-small.csv", memory_rows)):
        with open(workdir / name, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("id", "text"), *enumerate(texts[:n])])
    return workdir / "train.csv", workdir / "dev.csv"


def timed(command: list[str], log: Path) -> dict:
    """Run `command` under /usr/bin/time -v; its wall seconds and peak resident MiB."""
    started = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(["/usr/bin/time", "-v", *command], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed; see {log}")
    text = log.read_text()
    return {"seconds": time.perf_counter() - started,
            "peak_mib": int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024}


def labels_of(path: Path, column: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return [row[column] for row in csv.DictReader(f)]


def pipeline_side(model: str, source: Path, target: Path) -> None:
    """The pipeline as its documentation shows it, with its default batching, streaming the rows."""
    import transformers

    transformers.logging.set_verbosity_error()
    classify = transformers.pipeline("text-classification", model=model, truncation=True, top_k=None)

    def texts():
        with open(source, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                yield row["text"]

    started = time.perf_counter()
    with open(target, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prediction", "scores"])
        for done, scored in enumerate(classify(texts()), start=1):
            writer.writerow([scored[0]["label"], " ".join(f"{s['label']}={s['score']:.6f}" for s in scored)])
            if done % 5000 == 0:  # a long side says how far it is
                print(f"{done:,} rows in {time.perf_counter() - started:.0f} s", flush=True)


def cpu_name() -> str:
    try:
        found = re.search(r"Model name:\s*(.+)", subprocess.run(["lscpu"], capture_output=True, text=True).stdout)
        return f"{found.group(1).strip()}, {os.cpu_count()} cores" if found else platform.processor()
    except OSError:
        return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/predict-bench"))
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--train-rows", type=int, default=2000)
    p.add_argument("--memory-rows", type=int, default=10_000)
    p.add_argument("--short-pipeline", action="store_true", help="the pipeline on the first --memory-rows rows")
    p.add_argument("--pipeline", nargs=3, metavar=("MODEL", "INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.pipeline:
        return pipeline_side(*args.pipeline)
    args.workdir.mkdir(parents=True, exist_ok=True)
    train, dev = make_data(args.shared, args.workdir, args.rows, args.train_rows, args.memory_rows)
    new, small = args.workdir / "new.csv", args.workdir / "new-small.csv"
    glue_run = [sys.executable, "-m", "glue_runner.cli"]
    run = args.workdir / "run"
    if not (run / "model" / "config.json").is_file():
        subprocess.run([*glue_run, "--model", "minilm", "--train-file", str(train), "--validation-file", str(dev),
                        "--label-column", "emotion", "--save-model", "--output-dir", str(run), "--results-dir",
                        str(args.workdir / "results"), "--overwrite"],
                       check=True)
    print(f"CPU: {cpu_name()}; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    sides = {
        "glue-run predict": [*glue_run, "predict", "--model", str(run), "--input", str(new), "--output",
                             str(args.workdir / "predict.csv"), "--overwrite"],
        f"glue-run predict, {args.memory_rows:,} rows": [
            *glue_run, "predict", "--model", str(run), "--input", str(small), "--output",
            str(args.workdir / "predict-small.csv"), "--overwrite"],
        "glue-run predict --no-bf16": [*glue_run, "predict", "--model", str(run), "--input", str(new), "--output",
                                       str(args.workdir / "predict-fp32.csv"), "--overwrite", "--no-bf16"],
        "pipeline (default batching)": [sys.executable, __file__, "--pipeline", str(run / "model"),
                                        str(small if args.short_pipeline else new), str(args.workdir / "pipeline.csv")],
    }
    measured = {}
    for name, command in sides.items():
        measured[name] = timed(command, args.workdir / f"{re.sub(r'[^a-z0-9]+', '-', name)}.log")
        print(f"  {name}: {measured[name]['seconds']:.1f} s", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    reference = labels_of(args.workdir / "pipeline.csv", "prediction")
    outputs = {"glue-run predict": "predict.csv", "glue-run predict --no-bf16": "predict-fp32.csv",
               "pipeline (default batching)": "pipeline.csv"}
    print(f"\n{args.rows:,} rows, MiniLM (all-MiniLM-L6-v2) fine-tuned on 3 GoEmotions classes\n")
    print("| side | rows | wall s | rows/s | peak MiB | labels as the pipeline's |\n|---|---:|---:|---:|---:|---:|")
    short = f"glue-run predict, {args.memory_rows:,} rows"
    for name, m in measured.items():
        rows = args.memory_rows if name == short or (args.short_pipeline and name.startswith("pipeline")) \
            else args.rows
        agree = ""
        if name in outputs:
            ours = labels_of(args.workdir / outputs[name], "prediction")
            agree = f"{sum(a == b for a, b in zip(ours, reference)) / len(reference):.2%}"
        print(f"| {name} | {rows:,} | {m['seconds']:.1f} | {rows / m['seconds']:,.0f} | {m['peak_mib']:,.0f} | {agree} |")
    base = measured["pipeline (default batching)"]["seconds"]
    if args.short_pipeline:  # the same rows on both sides
        print(f"\nspeedup_vs_pipeline={base / measured[short]['seconds']:.2f} (on the first {args.memory_rows:,} rows)")
    else:
        print(f"\nspeedup_vs_pipeline={base / measured['glue-run predict']['seconds']:.2f} "
              f"(float32: {base / measured['glue-run predict --no-bf16']['seconds']:.2f})")


if __name__ == "__main__":
    main()
