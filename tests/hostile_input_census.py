"""The hostile-input census: throw hostile input at glue-run and count how each case ended.

    python tests/hostile_input_census.py [--examples 100] [--real-runs 1] [--repetitions 2] [--processes 4]
                                         [--only readers,flags,folders,concurrent,models,damaged,exports,empty]

(a bare number is --examples, as before). Exit status 1 when a case ended in a traceback, lost a
result, or ended otherwise than its scenario expects.

Eight groups of cases (issue 9; models, damaged, exports and empty from issue 19):

readers     tests/test_hostile_input.py's strategies write hostile files for every GLUE file and
            for the own-file readers (CSV, TSV, JSONL): parsed, or one GlueRunnerError, else CRASH.
flags       for every RunConfig field that takes a value (and the parser's --seeds), hostile values
            go to glue_runner.cli.main in-process with its run_all stubbed, so no model loads: each
            bound in the field's metadata and the numbers beside it, 0, negatives, nan, inf, huge,
            non-numbers, empty, unicode, bytes that are not UTF-8 (as a shell passes them), paths
            that are files, folders, missing, dangling links, under a file or not writable, comma
            lists, `--flag=value` and a missing value; each in a GLUE-folder run, an own-files run
            (with and without a test file) and a sweep. A case is accepted (the sweep would start),
            a clear error (exit 2: one line starting "error:", or argparse's usage error), or a
            TRACEBACK / other exit (a bug). Then the first --real-runs special values of each flag
            that were accepted run for real with the tiny model (--real-runs 0: none), since what
            an accepted value does can only show once the run starts.
folders     output-folder scenarios with the tiny model: --output-dir a file, under a file, not
            writable, a dangling link, not UTF-8, holding another run, a metrics.json cut short,
            checkpoints of other settings, in use by a live glue-run, a default folder another
            model's name already uses, the same command twice, --overwrite, ... Every file under the
            scenario's folder is snapshot before and compared after: a file that changed or vanished
            when the user did not ask for it (--overwrite, --no-resume) counts as a result LOST; so
            does a row gone from runs.csv. Each scenario also has the outcome it must end with.
concurrent  several glue-run processes (--processes, 4) started at the same moment (forked from one
            that imported the libraries once, so they collide within milliseconds; after the first
            round, at random offsets of up to 1.5 s) on the same sweep into one results folder, on
            that sweep again once it is done, and on the same --output-dir. What is right: a process
            exits 0 when it ran, or found already done, every run it was given, and 2 with one line
            "error: ... is in use by another glue-run (pid ...)" when it met a run another process
            is running (it did not finish its sweep itself, so the shell must hear it); never a
            traceback. Every run ends exactly once (one "wrote" line, its own folder, a metrics.json
            that parses) and is listed once in runs.csv; the finished sweep started again is
            "already done" in every process, which all write a whole leaderboard.png.
models      tiny models of other families built here (hidden 32, 2 layers, the tiny BERT's WordPiece
            vocabulary) with their tokenizers' input names: RoBERTa-style (one token type, no
            token_type_ids), DistilBERT (with and without a tokenizer that makes token types),
            DeBERTa-v2/v3-style (type_vocab_size 0, a tokenizer that makes types), ELECTRA, ModernBERT
            (where transformers has it), and a one-type BERT given a two-type tokenizer (refused on
            pairs); each trains on MRPC and SST-2. Then the tiny BERT and the RoBERTa-style model one
            after the other, both orders, in one results folder and one tokenization cache.
damaged     the tiny BERT's folder damaged: weights cut short, empty, a web page, missing, in an old
            pytorch_model.bin cut short, of another shape than config.json says; config.json without
            model_type, of an unknown family, not JSON, empty, a list, missing; tokenizer.json cut
            short, binary, another file; tokenizer_config.json not JSON; the tokenizer's or the
            vocabulary's files missing. A refusal must be one line naming the file and the fix.
exports     own data files as Excel (CSV UTF-8, Windows CSV in cp1252, Unicode text), LibreOffice
            (semicolons), pandas (to_csv with its index, to_json lines and array) and editors (blank
            lines, CR line ends, a line break in a quoted field, a BOM, .xlsx) write them, run with
            --train-file/--validation-file; a finished run's file is read again and must give the rows
            and texts written (a column taken for text that is not is UNEXPECTED).
empty       `--flag ""` and `--flag=` for every flag that takes a value (and --grid), in a GLUE-folder
            and an own-files run with run_all stubbed, each accepted one then run for real (not with
            --real-runs 0); and the same for the commands' flags and positionals (leaderboard,
            compare, validate-submission), which run for real on a results folder of two models.
            Each case of models, damaged and exports runs in a copy of a folder holding a finished
            run: a file of it changed or gone is a result LOST.

Prints one line per outcome kind with its count, then a line per group and a summary: cases
tried, accepted/parsed, clear errors, tracebacks, results lost (and outcomes other than the
scenario expects). Hypothesis runs with a fixed seed and no database, so the readers' and flags'
counts repeat; the concurrent group's split of "in use" and "already done" depends on timing. The
defaults take 5 to 10 minutes on two busy cores (models, damaged, exports and empty: 2 to 3);
tests/test_hostile_input.py runs a small census.
"""

import argparse
import collections
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fixtures  # noqa: E402
from glue_runner import data  # noqa: E402
from glue_runner.cli import build_parser
from glue_runner.config import FIELDS, RunConfig, flag, option_of, value_type  # noqa: E402
from glue_runner.data import get_task  # noqa: E402
from glue_runner.errors import GlueRunnerError  # noqa: E402
from test_hostile_input import GLUE_FILES, USER_TASKS, hostile, jsonl, table  # noqa: E402

SEED = 20260901
FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--max-train-samples", "16",
        "--max-eval-samples", "8"]


def hypothesis_settings(examples: int):
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))


class Census:
    """Outcomes by (group, kind), and the files lost."""

    def __init__(self):
        self.counts = collections.Counter()
        self.lost = collections.Counter()  # group -> files lost
        self.notes = []  # what a lost file or an unexpected outcome was, to print after the counts
        self.examples = {}  # (group, outcome) -> the first case that ended so, for bugs

    def add(self, group: str, outcome: str, n: int = 1, example: str | None = None) -> None:
        self.counts[(group, outcome)] += n
        if example and is_bug(outcome):
            self.examples.setdefault((group, outcome), example)

    def lose(self, group: str, where: str, paths) -> None:
        for path in paths:
            self.lost[group] += 1
            self.notes.append(f"LOST ({group}) {where}: {path}")


# ---- readers ---------------------------------------------------------------

def kind(e: Exception, path: Path) -> str:
    text = str(e).replace(str(path), "FILE")
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    return re.split(r"[;(]", re.sub(r"\d+", "N", text))[0][:90]


def census(examples: int) -> collections.Counter:
    """The readers: (reader, outcome) -> count."""
    outcomes = collections.Counter()
    root = Path(tempfile.mkdtemp())
    glue = fixtures.make_glue_dir(root / "fixture")

    def attempt(reader: str, load, path: Path) -> None:
        try:
            splits = load()
            outcomes[(reader, f"parsed ({'some rows skipped, counted' if any(s.skipped for s in splits.values()) else 'all rows'})")] += 1
        except GlueRunnerError as e:
            outcomes[(reader, "error: " + kind(e, path))] += 1
        except Exception as e:  # noqa: BLE001 - the census reports what the tests forbid
            outcomes[(reader, f"CRASH {type(e).__name__}: {str(e)[:80]}")] += 1

    for task_name, split, filename in GLUE_FILES:
        task = get_task(task_name)
        folder = root / "glue" / task.glue_dir
        if not folder.exists():
            shutil.copytree(glue / task.glue_dir, folder)
        strategy = table(task.columns_for(split), list(task.label_names))

        @hypothesis_seed(SEED)
        @hypothesis_settings(examples)
        @given(hostile(strategy))
        def run(raw):
            (folder / filename).write_bytes(raw)
            cfg = RunConfig(task=task_name, model="x", data_dir=root / "glue")
            attempt("GLUE TSV", lambda: data.load_splits(task, cfg, log=lambda *a: None), folder / filename)

        run()
        shutil.copy(glue / task.glue_dir / filename, folder / filename)

    for task_name in USER_TASKS:
        task = get_task(task_name)
        good = root / "validation.jsonl"
        good.write_text('{"%s": "a", "%s": "b", "label": "%s"}\n' % (
            task.text_fields[0], task.text_fields[-1], task.label_names[0] if task.label_names else "2.5"))
        for suffix in (".csv", ".tsv", ".jsonl"):
            keys = [*task.text_fields, "label"]
            path = root / f"train{suffix}"

            @hypothesis_seed(SEED)
            @hypothesis_settings(examples)
            @given(hostile(jsonl(keys, list(task.label_names)) if suffix == ".jsonl"
                           else table({k: k for k in keys}, list(task.label_names))))
            def run(raw):
                path.write_bytes(raw)
                cfg = RunConfig(task=task_name, model="x", train_file=path, validation_file=good)
                attempt(f"own {suffix}", lambda: data.load_splits(task, cfg, log=lambda *a: None), path)

            run()
    shutil.rmtree(root)
    return outcomes


def reader_census(c: Census, examples: int) -> None:
    for (reader, outcome), n in census(examples).items():
        c.add(f"readers: {reader}", outcome, n)


# ---- running glue-run in-process ---------------------------------------------

class TimeLimit(BaseException):
    """A real run still going at its time limit (a value that asks for a long run)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(*_):
        raise TimeLimit()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_main(argv: list[str], limit: float | None = None) -> tuple[object, str]:
    """glue-run's main in-process: (exit code, or "traceback" / "time limit"; what it printed)."""
    from glue_runner import cli

    out, argv_before = io.StringIO(), sys.argv
    sys.argv = ["glue-run", *argv]  # as a shell would start it (run_lock records the command)
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        try:
            with time_limit(limit) if limit else contextlib.nullcontext():
                code = cli.main(argv)
        except SystemExit as e:  # argparse
            code = e.code
        except TimeLimit:
            code = "time limit"
        except Exception:  # noqa: BLE001 - what the census is looking for
            code = "traceback"
            out.write(traceback.format_exc())
        finally:
            sys.argv = argv_before
    return code, out.getvalue()


def message_kind(text: str, replace: dict[str, str]) -> str:
    """A message with its paths, quoted parts and numbers blanked, so alike messages count together."""
    for old, new in sorted(replace.items(), key=lambda kv: -len(kv[0])):
        if len(old.strip()) >= 3 and not re.fullmatch(r"[A-Za-z_-]+", old):  # not a word the message uses itself
            text = text.replace(old, new)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"(?<!\S)(?!--)[^\s'…]*/[^\s'…]*", "PATH", text)
    text = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
    return re.split(r"; |\(", text)[0].strip()[:100]


def ending(code, output: str, replace: dict[str, str], ok: str = "accepted") -> str:
    """How one call ended, as an outcome kind: ok, a clear error, or a bug. Lines are what a terminal
    shows as lines: a message holding a newline is not one line."""
    lines = [line for line in re.split(r"[\n\r\v\f]", output) if line.strip()]
    last = lines[-1] if lines else ""
    if code == "traceback" or "Traceback (most recent call last)" in output:
        return "TRACEBACK " + message_kind(last, replace)
    if code == "time limit":
        return f"{ok} (still running at its time limit: stopped)"
    if code == 0:
        return ok
    usage = re.match(r"glue-run( [\w-]+)?: error:", last)  # glue-run's, or a subcommand's (glue-run compare)
    if code == 2 and any(line.startswith("usage:") for line in lines) and usage:
        return "usage error: " + message_kind(last.removeprefix(usage.group(0)), replace)
    errors = [line for line in lines if line.startswith("error:")]
    if code == 2 and len(errors) == 1 and last == errors[0]:
        return "error: " + message_kind(last.removeprefix("error:"), replace)
    return f"OTHER EXIT {code}: {message_kind(last, replace)}"


def shown(argv: list[str]) -> str:
    """A command's flags as a reader can retype them (long values cut)."""
    return " ".join(a if re.fullmatch(r"[-\w.,/=]+", a) else repr(a if len(a) < 40 else a[:30] + "…") for a in argv)


def is_bug(outcome: str) -> bool:
    return outcome.startswith(("TRACEBACK", "CRASH", "OTHER EXIT"))


def snapshot(root: Path, skip=()) -> dict[str, bytes]:
    """Every file's bytes under root (links as their target), relative path -> bytes."""
    files = {}
    for folder, dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            if name in (".lock", ".glue-run.lock") or any(rel.startswith(s) for s in skip):
                continue
            files[rel] = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        dirs[:] = [d for d in dirs if not Path(folder, d).is_symlink()]
    return files


def changed(before: dict[str, bytes], after: dict[str, bytes], allowed=lambda rel: False) -> list[str]:
    return [f"{rel} {'vanished' if rel not in after else 'changed'}" for rel, content in before.items()
            if after.get(rel) != content and not allowed(rel)]


# ---- flags -----------------------------------------------------------------

def value_flags() -> list[tuple[str, dataclasses.Field | None, list[str]]]:
    """(name, RunConfig field or None, its flag names) for every flag that takes a value: the
    fields that are not switches, and the parser's own options beside them (--seeds)."""
    found = [(f.name, f, list(option_of(f).flags or (flag(f.name),)))
             for f in dataclasses.fields(RunConfig) if value_type(f) is not bool]
    for action in build_parser()._actions:
        if action.dest not in FIELDS and action.option_strings and action.nargs is None and action.const is None \
                and action.dest != "help":
            found.append((action.dest, None, list(action.option_strings)))
    return found


NOT_UTF8 = [os.fsdecode(b) for b in (b"caf\xe9", b"\xff\xfe", b"r\xc3te")]  # what a shell passes for such bytes
ODD_TEXT = ["", " ", "\t", "-", "--", "-x", "é", "😀", "\u202e", "\u2028", "ｒｔｅ", "a b", "x" * 300, *NOT_UTF8]
NUMBER_WORDS = ["0", "-0", "-1", "1", "nan", "-nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309", "9" * 40,
                "-" + "9" * 40, str(2 ** 63), str(2 ** 64), "1e-320", "1e308", "1.5", "1e3", "0x10", "1_0", "٣",
                "１", "+5", " 7 ", "1,2", "abc", "True"]


def number_specials(f: dataclasses.Field) -> list[str]:
    """Values at and beside each of the field's bounds (those inside first), then the usual suspects."""
    kind, meta, inside, outside = value_type(f), option_of(f), [], []
    for key, direction in (("minimum", 1), ("above", 1), ("below", -1)):
        bound = getattr(meta, key)
        if bound is None:
            continue
        if kind is int:
            near = [bound + direction, bound - direction]
        else:
            near = [math.nextafter(bound, direction * math.inf), math.nextafter(bound, -direction * math.inf),
                    bound + direction * 1e-9]
        (inside if key == "minimum" else outside).append(repr(bound))
        inside.append(repr(near[0]))
        outside.append(repr(near[1]))
        inside += [repr(n) for n in near[2:]]
    huge = ["9" * 40, "1e308"] if kind is float else [str(2 ** 63 - 1), "9" * 40, str(2 ** 63), "9" * 400]
    return list(dict.fromkeys(inside + huge + outside + NUMBER_WORDS + ODD_TEXT))


PATH_SPECIALS = ["afile", "dangling", "/sys/glue-census", "afile/below", "afolder", "missing/deeper", "", ".", "..",
                 "/", "~", "~nosuchuser/x", "x" * 300, "afolder/" + "y" * 300, "own/train.csv", "own/notes.txt",
                 "own/empty.csv", "own/labels.csv", *NOT_UTF8, "é/ü", " ", "-", "--"]
LIST_SPECIALS = ["rte,rte", "1,1", "sentence", " rte , wnli ", "rte,,wnli", "0,4294967295", "RTE", "sts-b", "", " ",
                 ",", ",,", "rte", "rte,wnli", "rte;wnli", "all", "ALL", "all,rte", "ax", "mnli,ax", "ax,mnli",
                 "STS-B", "unknown", "1,2", "1,-2", "4294967296", "1.5", "nan", "1,,2", "sentence,label",
                 "sentence,sentence", "label", "a,b,c", *ODD_TEXT]


def specials(name: str, f: dataclasses.Field | None) -> list[str]:
    kind = value_type(f) if f else str
    if kind in (int, float):
        return number_specials(f)
    if kind is Path or name in ("model",):
        return PATH_SPECIALS
    choices = list(option_of(f).choices or ()) if f else []
    if choices:
        return list(dict.fromkeys(choices + [c.upper() for c in choices] + [f" {c}" for c in choices] + ODD_TEXT))
    return LIST_SPECIALS


def shell_text() -> st.SearchStrategy:
    """What a command line can carry: any text without NUL, or bytes that are not UTF-8."""
    return st.one_of(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
                     st.binary(max_size=12).filter(lambda b: b"\x00" not in b).map(os.fsdecode))


def hostile_values(name: str, f: dataclasses.Field | None) -> st.SearchStrategy:
    kind = value_type(f) if f else str
    special = st.sampled_from(specials(name, f))
    if kind in (int, float):
        numbers = st.one_of(st.integers().map(str), st.floats().map(repr),
                            st.floats(-10, 10).map(lambda x: f"{x:g}"), st.integers(-3, 3).map(str))
        return st.one_of(special, special, numbers, shell_text())
    if kind is Path or name == "model":
        part = st.one_of(st.sampled_from(["afile", "afolder", "dangling", "own", "missing", "..", ".", "~", ""]),
                         shell_text())
        return st.one_of(special, special, st.lists(part, min_size=1, max_size=3).map("/".join), shell_text())
    words = st.one_of(st.sampled_from(["rte", "wnli", "mnli", "ax", "all", "sentence", "label", "1", "-1", "2"]),
                      shell_text())
    return st.one_of(special, special, st.lists(words, max_size=4).map(lambda w: ",".join(w)), shell_text())


def make_case_root(root: Path) -> Path:
    """A folder with the things hostile paths point at."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "afile").write_text("not a folder\n")
    (root / "afolder" / "sub").mkdir(parents=True)
    (root / "afolder" / "notes.txt").write_text("the user's notes\n")
    (root / "afolder" / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (root / "dangling").symlink_to(root / "not-mounted" / "disk")
    own = root / "own"
    own.mkdir()
    rows = "".join(f"{'a good film' if i % 2 else 'a bad film'} {i},{i % 2}\n" for i in range(24))
    (own / "train.csv").write_text("sentence,label\n" + rows)
    (own / "validation.csv").write_text("sentence,label\n" + rows)
    (own / "test.csv").write_text("sentence\n" + "".join(f"a film {i}\n" for i in range(8)))
    (own / "notes.txt").write_text("sentence,label\na,1\n")
    (own / "empty.csv").write_text("")
    (own / "labels.csv").write_text("sentence,label\na,science\n")
    return root


def contexts(model: Path, glue: Path) -> dict[str, list[str]]:
    """Complete commands a hostile flag is added to (each accepted as it is)."""
    own = ["--task", "sst2", "--model", str(model), "--train-file", "own/train.csv", "--validation-file",
           "own/validation.csv"]
    return {
        "GLUE folder": ["--task", "rte", "--model", str(model), "--data-dir", str(glue)],
        "own files": own,
        "own files, --do-predict": [*own, "--test-file", "own/test.csv", "--do-predict"],
        "sweep": ["--task", "rte,wnli", "--seeds", "1,2", "--model", str(model), "--data-dir", str(glue)],
    }


def inside(value: str, root: Path) -> bool:
    """Whether a real run given this value as a path can only write under root (or where nothing can be written)."""
    try:
        path = Path(value).expanduser()
        resolved = (root / path).resolve()
    except (RuntimeError, OSError, ValueError):
        return True  # cannot even be expanded: nothing is written there
    return resolved.is_relative_to(root.resolve()) or str(resolved).startswith("/sys/")


def stubbed_attempts(c: Census, root: Path, replace: dict):
    """attempt(group, argv, value, example): glue-run's main on argv in root with run_all stubbed (so no
    model loads), counted under group; a file of root's that changed is a result lost."""
    from unittest import mock

    from glue_runner import cli

    def stub(configs, console, grid=None, shard=None):
        return []

    fixture_files = snapshot(root)

    def attempt(group: str, argv: list[str], value: str, example: str) -> str:
        cwd = os.getcwd()
        os.chdir(root)
        try:
            with mock.patch.object(cli, "run_all", stub):
                code, output = call_main(argv)
        finally:
            os.chdir(cwd)
        outcome = ending(code, output, {**replace, value: "VALUE"} if value else replace)
        c.add(group, outcome, example=example)
        now = snapshot(root)
        if now != fixture_files:
            c.lose(group, example, changed(fixture_files, now))
            for rel in set(now) - set(fixture_files):
                Path(root, rel).unlink()
        return outcome

    return attempt


def flag_census(c: Census, examples: int, real_runs: int, work: Path, model: Path, glue: Path,
                special_values: int | None = None) -> None:
    root = make_case_root(work / "flags")
    cache = work / "cache"
    bases = contexts(model, glue)
    replace = {str(root): "ROOT", str(model): "MODEL", str(glue): "GLUE", str(cache): "CACHE"}
    stubbed = stubbed_attempts(c, root, replace)
    accepted_specials = collections.defaultdict(list)  # flag -> [(context, flag name, value)] accepted

    def attempt(name: str, context: str, argv_tail: list[str], value: str) -> str:
        return stubbed(f"flags: {name}", [*bases[context], "--cache-dir", str(cache), *argv_tail], value,
                       f"{shown(argv_tail)} [{context}]")

    for name, f, names in value_flags():
        for value in specials(name, f)[:special_values]:
            for context in bases:
                if attempt(name, context, [names[0], value], value) == "accepted":
                    accepted_specials[name].append((context, names[0], value))

        @hypothesis_seed(SEED)
        @hypothesis_settings(examples)
        @given(value=hostile_values(name, f), context=st.sampled_from(list(bases)), spelled=st.sampled_from(names),
               form=st.sampled_from(["separate", "separate", "joined", "missing value", "twice"]))
        def run(value, context, spelled, form):
            tail = {"separate": [spelled, value], "joined": [f"{spelled}={value}"], "missing value": [spelled],
                    "twice": [spelled, value, spelled, value]}[form]
            attempt(name, context, tail, value)

        run()

    if real_runs:
        real_census(c, real_runs, accepted_specials, work, model, glue, cache, bases, replace)


def real_census(c: Census, real_runs: int, accepted_specials: dict, work: Path, model: Path, glue: Path,
                cache: Path, bases: dict, replace: dict) -> None:
    """The first accepted special values of each flag, run for real with the tiny model."""
    for name, cases in accepted_specials.items():
        chosen = {}  # the first values in specials() order, each in the first context that accepted it
        for context, spelled, value in cases:
            if value not in chosen and len(chosen) < real_runs:
                chosen[value] = (context, spelled)
        for value, (context, spelled) in chosen.items():
            root = make_case_root(Path(tempfile.mkdtemp(dir=work, prefix="real-")))
            if not inside(value, root):
                c.add(f"flags, real run: {name}", "not run: the value names a folder outside the census's")
                continue
            before = snapshot(root)
            cwd = os.getcwd()
            os.chdir(root)
            try:
                argv = [*bases[context], "--cache-dir", str(cache), *FAST, spelled, value]
                code, output = call_main(argv, limit=30)
            finally:
                os.chdir(cwd)
            outcome = ending(code, output, {**replace, str(root): "ROOT", value: "VALUE"}, ok="done")
            c.add(f"flags, real run: {name}", outcome, example=f"{shown([spelled, value])} [{context}]")
            lost = changed(before, snapshot(root))
            c.lose(f"flags, real run: {name}", f"{spelled} {value!r}", lost)
            shutil.rmtree(root, ignore_errors=True)


# ---- output folders ------------------------------------------------------------

@dataclasses.dataclass
class Scenario:
    name: str
    flags: list[str]  # after the base command (task rte, the model in a/model, the GLUE folder)
    expect: str  # "done", "already done", "error", "in use"
    setup: object = None  # called with the scenario's folder before the snapshot
    may_change: tuple[str, ...] = ()  # what the user asked to be replaced (path prefixes)
    skip: str | None = None  # why the scenario cannot run here


def table_rows(folder: Path) -> dict[str, dict[str, str]]:
    try:
        with open(folder / "results" / "runs.csv", newline="", encoding="utf-8") as f:
            return {row["run"]: {k: v for k, v in row.items() if v} for row in csv.DictReader(f)}  # columns come and go
    except FileNotFoundError:
        return {}


def folder_scenarios(model_copy, checkpoint, hold) -> list[Scenario]:
    default = "results/runs/model/rte-seed42"

    def write(path: str, text: str):
        return lambda d: (Path(d, path).parent.mkdir(parents=True, exist_ok=True), Path(d, path).write_text(text))

    def copy_run(to: str):
        return lambda d: shutil.copytree(Path(d, default), Path(d, to))

    def cut_short(path: str):
        return lambda d: Path(d, path).write_bytes(Path(d, path).read_bytes()[:100])

    def both(*steps):
        return lambda d: [step(d) for step in steps]

    sys_writable = not Path("/sys").is_dir() or (os.access("/sys", os.W_OK) and os.geteuid() != 0)
    not_utf8, not_utf8_model = os.fsdecode(b"out-caf\xe9"), os.fsdecode(b"mod\xe8le")
    return [
        Scenario("the same command twice", [], "already done"),
        Scenario("--overwrite", ["--overwrite"], "done", may_change=(default + "/",)),
        Scenario("other settings: a folder of their own", ["--learning-rate", "3e-3"], "done"),
        Scenario("--output-dir is a file", ["--output-dir", "afile"], "error", write("afile", "not a folder\n")),
        Scenario("--output-dir's parent is a file", ["--output-dir", "afile/run"], "error",
                 write("afile", "not a folder\n")),
        Scenario("--output-dir cannot be written", ["--output-dir", "/sys/glue-run-census"], "error",
                 skip="needs Linux's /sys, which refuses new files even to root" if sys_writable else None),
        Scenario("--output-dir is a dangling link (a disk not mounted)", ["--output-dir", "gone"], "error",
                 lambda d: Path(d, "gone").symlink_to(Path(d, "not-mounted", "run"))),
        Scenario("--output-dir's name is not UTF-8", ["--output-dir", not_utf8], "error"),
        Scenario("the model's folder name is not UTF-8", ["--model", not_utf8_model], "error",
                 model_copy(not_utf8_model)),
        Scenario("--model-name is not UTF-8, --save-model", ["--model-name", not_utf8, "--save-model"], "done"),
        Scenario("--output-dir holds other files", ["--output-dir", "afolder"], "done",
                 both(write("afolder/notes.txt", "the user's notes\n"), write("afolder/sub/x.tsv", "a\tb\n"))),
        Scenario("--output-dir holds a finished run of other settings", ["--output-dir", "mine", "--learning-rate",
                 "3e-3"], "error", copy_run("mine")),
        Scenario("... and --overwrite", ["--output-dir", "mine", "--learning-rate", "3e-3", "--overwrite"], "done",
                 copy_run("mine"), may_change=("mine/",)),
        Scenario("--output-dir holds a metrics.json cut short", ["--output-dir", "mine"], "error",
                 both(copy_run("mine"), cut_short("mine/metrics.json"))),
        Scenario("the default folder holds a metrics.json cut short", [], "done", cut_short(default + "/metrics.json")),
        Scenario("--output-dir holds checkpoints of other settings", ["--output-dir", "mine"], "error",
                 checkpoint("mine", ["--learning-rate", "3e-3"])),
        Scenario("... and --no-resume", ["--output-dir", "mine", "--no-resume"], "done",
                 checkpoint("mine", ["--learning-rate", "3e-3"]), may_change=("mine/checkpoint-",)),
        Scenario("--output-dir in use by another glue-run", ["--output-dir", "mine"], "in use", hold("mine")),
        Scenario("a finished run's folder held by another glue-run", [], "already done", hold(default)),
        Scenario("... and --overwrite", ["--overwrite"], "in use", hold(default)),
        Scenario("the default folder's name is another model's", ["--model", "b/model"], "done", model_copy("b/model")),
        Scenario("--results-dir is a file", ["--results-dir", "afile"], "error", write("afile", "not a folder\n")),
        Scenario("--results-dir is a dangling link (a disk not mounted)", ["--results-dir", "gone"], "error",
                 lambda d: Path(d, "gone").symlink_to(Path(d, "not-mounted", "results"))),
        Scenario("--cache-dir is a file", ["--cache-dir", "afile", "--seed", "7"], "error",
                 write("afile", "not a folder\n")),
        Scenario("--cache-dir cannot be written", ["--cache-dir", "/sys/glue-run-census", "--seed", "7"], "error",
                 skip="needs Linux's /sys, which refuses new files even to root" if sys_writable else None),
    ]


def folder_census(c: Census, work: Path, model: Path, glue: Path, quick: bool = False) -> None:
    """quick: only the scenarios that end before a model loads (an error, "in use", "already done")."""
    from glue_runner import results as results_module
    from glue_runner import tables as tables_module
    from glue_runner.session import configs_from_args

    cache = work / "cache"
    common = ["--task", "rte", "--data-dir", str(glue), "--cache-dir", str(cache), *FAST]
    first = ["--model", str(work / "folders-base" / "a" / "model"), *common]
    base = base_folder(work, "folders", first, setup=lambda d: shutil.copytree(model, d / "a" / "model"))
    cwd = os.getcwd()  # each scenario runs in its own folder, and comes back here

    holders = []

    def model_copy(to: str):
        return lambda d: shutil.copytree(model, Path(d, to))

    def checkpoint(to: str, flags: list[str]):
        """A real checkpoint (weights, state, identity) of the same run with other flags, in d/to."""
        def make(d: Path) -> None:
            from transformers import AutoModelForSequenceClassification

            args = build_parser().parse_args([*first, *flags])
            cfg = configs_from_args(args)[0].resolved(get_task("rte").recipe)
            with contextlib.redirect_stderr(io.StringIO()):  # its note that the head is new
                weights = AutoModelForSequenceClassification.from_pretrained(model, num_labels=2)
            results_module.save_checkpoint(Path(d, to), 1, weights, {"position": {}}, cfg)
        return make

    def hold(folder: str):
        """Another glue-run holding the folder: a live process in results.run_lock."""
        def start(d: Path) -> None:
            code = ("import sys; from glue_runner import results\n"
                    "with results.run_lock(sys.argv[1]):\n print('held', flush=True); sys.stdin.read()")
            proc = subprocess.Popen([sys.executable, "-c", code, str(Path(d, folder))], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
            holders.append(proc)
            assert proc.stdout.readline().strip() == "held"
        return start

    for scenario in folder_scenarios(model_copy, checkpoint, hold):
        group = "folders"
        if quick and scenario.expect == "done":
            continue
        if scenario.skip:
            c.add(group, f"skipped: {scenario.name} ({scenario.skip})")
            continue
        folder = Path(tempfile.mkdtemp(dir=work, prefix="folder-"))
        shutil.copytree(base, folder, dirs_exist_ok=True)
        if scenario.setup:
            scenario.setup(folder)
        if (folder / "results").is_dir() and not (folder / "results").is_symlink():
            tables_module.update_tables(folder / "results")  # the tables as they stand after the setup
        before, rows_before = snapshot(folder), table_rows(folder)
        os.chdir(folder)
        try:
            code, output = call_main(["--model", str(base / "a" / "model"), *common, *scenario.flags])
        finally:
            os.chdir(cwd)
            for proc in holders:
                proc.kill()
                proc.wait()
            holders.clear()
        replace = {str(folder): "ROOT", str(base): "BASE", str(glue): "GLUE", str(cache): "CACHE"}
        outcome = ending(code, output, replace, ok="done")
        if outcome == "done" and "already done" in output:
            outcome = "already done"
        got = "in use" if outcome.startswith("error:") and "in use by another glue-run" in outcome else \
            "error" if outcome.startswith("error:") else outcome
        if got != scenario.expect:
            c.notes.append(f"UNEXPECTED (folders) {scenario.name}: {outcome}, expected {scenario.expect}")
            outcome = f"{outcome} — UNEXPECTED, expected {scenario.expect}"
        c.add(group, f"{outcome}  [{scenario.name}]", example=shown(scenario.flags))

        def allowed(rel: str) -> bool:
            return rel.startswith(scenario.may_change) if scenario.may_change else False

        tables = ("results/runs.csv", "results/runs.md")
        lost = changed({k: v for k, v in before.items() if k not in tables}, snapshot(folder), allowed)
        rows_after = table_rows(folder)
        lost += [f"runs.csv row of {run} {'vanished' if run not in rows_after else 'changed'}"
                 for run, row in rows_before.items()
                 if rows_after.get(run) != row and not allowed(str(Path("results", run)) + "/")]
        c.lose(group, scenario.name, lost)
        shutil.rmtree(folder, ignore_errors=True)


# ---- real runs, case by case: models, damaged, exports -----------------------------

MODEL_FAST = ["--num-train-epochs", "1", "--max-train-samples", "16", "--max-eval-samples", "8"]


@dataclasses.dataclass
class Case:
    """One case of the models, damaged and exports groups: glue-run run for real, once or several times
    one after the other, in a folder of its own (a copy of the group's base folder, which holds a
    finished run, so there is something to lose)."""
    name: str
    # run in the case's folder, in turn; the first that does not finish ends the case. A callable is a step
    # between them (an edit of a file), called with the folder: it returns None, or (exit code, output) when
    # it ran glue-run itself (a run stopped on purpose, a launcher)
    commands: list
    expect: str  # "done", "error", or "done or error" (both right: a tokenizer rebuilt from its vocabulary)
    setup: object = None  # called with the case's folder before the first snapshot
    mentions: tuple[str, ...] = ()  # what its error line must name: the damaged file and the fix (case ignored)
    check: object = None  # called in the case's folder after it ended as expected: what was read or run wrong
    note: str = ""  # what is known about it, printed with the outcome
    says: tuple[str, ...] = ()  # what the last command's output must say, whatever its ending (case ignored)
    may_change: tuple[str, ...] = ()  # what the case's commands change on purpose: these paths, and the files under them


def lost_since(before: dict[str, bytes], rows_before: dict, folder: Path, allowed=lambda rel: False) -> list[str]:
    """What changed or vanished under folder since the snapshot, and runs.csv rows gone or changed
    (runs.csv and runs.md themselves are rewritten by every run, so they are compared by row)."""
    tables = ("results/runs.csv", "results/runs.md")
    lost = changed({k: v for k, v in before.items() if k not in tables}, snapshot(folder), allowed)
    rows_after = table_rows(folder)
    return lost + [f"runs.csv row of {run} {'vanished' if run not in rows_after else 'changed'}"
                   for run, row in rows_before.items()
                   if rows_after.get(run) != row and not allowed(str(Path("results", run)) + "/")]


def run_cases(c: Census, group: str, cases: list[Case], base: Path, work: Path, replace: dict) -> None:
    cwd = os.getcwd()
    # each case in a fresh copy of the base at the path the base ran in: a run's identity holds its files'
    # paths (and own files alone in a folder name their task after it: news/train.csv is news)
    pristine = base.with_name(f"{base.name}-pristine")
    base.rename(pristine)
    for case in cases:
        folder = base
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(pristine, folder)
        if case.setup:
            case.setup(folder)
        where, problems, output = {**replace, str(folder): "ROOT"}, [], ""
        for argv in case.commands:
            before, rows_before = snapshot(folder), table_rows(folder)
            os.chdir(folder)
            try:
                ran = argv(folder) if callable(argv) else call_main(argv, limit=300)
            finally:
                os.chdir(cwd)
            c.lose(group, case.name, lost_since(before, rows_before, folder,
                                                lambda rel: rel.startswith(case.may_change) or callable(argv)))
            if ran is None:
                continue
            code, output = ran
            outcome = ending(code, output, where, ok="done")
            if outcome != "done":
                break
        got = "error" if outcome.startswith(("error:", "usage error:")) else outcome
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        if got not in case.expect.split(" or "):
            problems.append(f"ended {got}, expected {case.expect}")
        elif got == "error":
            problems += [f"its error does not name {m!r}" for m in case.mentions if m.lower() not in errors[-1].lower()]
        if case.check and not problems and (got == "done" or case.expect == "error"):
            os.chdir(folder)
            try:
                problems += case.check(folder)
            finally:
                os.chdir(cwd)
        flat = " ".join(output.split()).lower()
        problems += [f"it does not say {phrase!r}" for phrase in case.says if phrase.lower() not in flat]
        if is_bug(outcome):
            tail = " | ".join(output.strip().splitlines()[-3:])
            c.notes.append(f"{outcome.split()[0]} ({group}) {case.name}: ...{tail}")
        for problem in problems:
            c.notes.append(f"UNEXPECTED ({group}) {case.name}: {problem}")
        c.add(group, f"{outcome}{' — UNEXPECTED: ' + '; '.join(problems) if problems else ''}  [{case.name}]"
                     f"{'  (' + case.note + ')' if case.note else ''}",
              example=" ;; ".join(f"<{getattr(argv, 'said', 'a step')}>" if callable(argv) else shown(argv)
                                  for argv in case.commands))
        shutil.rmtree(folder, ignore_errors=True)


def base_folder(work: Path, name: str, argv: list[str], setup=None) -> Path:
    """A group's base folder: what setup puts there, and the finished run of argv in it."""
    base = work / f"{name}-base"
    base.mkdir()
    if setup:
        setup(base)
    cwd = os.getcwd()
    os.chdir(base)
    try:
        code, output = call_main(argv)
    finally:
        os.chdir(cwd)
    assert code == 0, output  # the base run itself
    return base


def finished_runs(folder: Path) -> set[str]:
    return {str(p.parent.relative_to(folder / "results")) for p in (folder / "results").rglob("metrics.json")}


# ---- models of other families --------------------------------------------------

TWO_INPUTS = ["input_ids", "attention_mask"]  # what RoBERTa's, DistilBERT's and ModernBERT's tokenizers make
THREE_INPUTS = ["input_ids", "token_type_ids", "attention_mask"]  # BERT's, ELECTRA's, DeBERTa-v2/v3's


def family_config(family: str, vocab_size: int):
    """A tiny configuration of the family (hidden 32, 2 layers) and its tokenizer's model_input_names; None
    where this transformers has no such family."""
    import transformers as t

    small = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    if family == "roberta":  # one token type; positions start after the padding index (roberta-base has 514)
        return t.RobertaConfig(**{**small, "max_position_embeddings": 130}, type_vocab_size=1), TWO_INPUTS
    if family in ("distilbert", "distilbert, tokenizer makes token types"):  # its forward takes no token types
        return (t.DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                   max_position_embeddings=128, pad_token_id=0),
                TWO_INPUTS if family == "distilbert" else THREE_INPUTS)
    # as deberta-v3-base: no token-type embedding (type_vocab_size 0), yet its tokenizer makes types
    if family == "deberta-v2":
        return t.DebertaV2Config(**small, type_vocab_size=0, relative_attention=True, position_buckets=16,
                                 pos_att_type=["p2c", "c2p"], position_biased_input=False), THREE_INPUTS
    if family == "electra":
        return t.ElectraConfig(**small, embedding_size=32), THREE_INPUTS
    if family == "modernbert":
        if not hasattr(t, "ModernBertConfig"):
            return None
        return t.ModernBertConfig(**small, cls_token_id=2, sep_token_id=3, bos_token_id=2, eos_token_id=3,
                                  local_attention=16), TWO_INPUTS
    if family == "bert, one token type":  # a tokenizer that makes two for a model with one: refused before training
        return t.BertConfig(**small, type_vocab_size=1), THREE_INPUTS
    raise ValueError(family)


FAMILIES = ["roberta", "distilbert", "distilbert, tokenizer makes token types", "deberta-v2", "electra", "modernbert",
            "bert, one token type"]


def tiny_family(root: Path, family: str, bert: Path) -> Path | None:
    """The family's tiny model with the tiny BERT's WordPiece vocabulary and the input names its family's
    tokenizer makes, saved as save_pretrained saves a downloaded checkpoint (no head)."""
    import torch
    import transformers

    made = family_config(family, len((bert / "vocab.txt").read_text(encoding="utf-8").splitlines()))
    if made is None:
        return None
    config, input_names = made
    out = root / re.sub(r"\W+", "-", family)
    transformers.BertTokenizerFast(vocab=str(bert / "vocab.txt"), do_lower_case=True, model_max_length=128,
                                   model_input_names=input_names).save_pretrained(out)
    torch.manual_seed(0)
    with contextlib.redirect_stderr(io.StringIO()):
        transformers.AutoModel.from_config(config).save_pretrained(out)
    return out


def models_census(c: Census, work: Path, model: Path, glue: Path) -> None:
    cache = work / "cache"
    models = work / "models"

    def command(path: Path, task: str, cache_dir: Path = cache) -> list[str]:
        return ["--task", task, "--model", str(path), "--data-dir", str(glue), "--cache-dir", str(cache_dir),
                *MODEL_FAST]

    # the base run leaves BERT's tokens of MRPC, with token types, in the cache every family's run shares
    base = base_folder(work, "models", command(model, "mrpc"))
    cases = []
    for family in FAMILIES:
        path = tiny_family(models, family, model)
        if path is None:
            c.add("models", f"skipped: {family} (this transformers has no such family)")
            continue
        refused = family == "bert, one token type"
        for task in ("mrpc", "sst2"):
            # a single sentence makes type 0 only, which a one-type model has
            expect = "error" if refused and task == "mrpc" else "done"
            cases.append(Case(f"{family} on {task}", [command(path, task)], expect,
                              mentions=("type_vocab_size",) if expect == "error" else ()))
    roberta = models / "roberta"
    for n, order in enumerate([(model, roberta), (roberta, model)]):
        fresh = work / f"cache-sequence-{n}"  # a cache of their own: the first model's tokens are there for the second
        # another seed than the base run's, which would be already done
        commands = [[*command(m, task, fresh), "--seed", "7"] for task in ("mrpc", "sst2") for m in order]
        expected = {f"runs/{m.name}/{task}-seed7" for task in ("mrpc", "sst2") for m in order}
        cases.append(Case(f"{order[0].name} then {order[1].name}, one results folder and cache", commands, "done",
                          check=lambda folder, expected=expected: [f"no finished run {run}" for run in
                                                                   sorted(expected - finished_runs(folder))]))
    run_cases(c, "models", cases, base, work, {str(model): "MODEL", str(models): "MODELS", str(glue): "GLUE",
                                               str(cache): "CACHE", str(work): "WORK"})


# ---- damaged model folders ------------------------------------------------------

def damaged_cases(command: list[str]) -> list[Case]:
    """The tiny BERT in the case's folder as `model` (a name no family's is matched on), damaged."""
    def file(name: str) -> Path:
        return Path("model", name)

    def cut(name: str, keep: float):
        def setup(d: Path) -> None:
            content = (d / file(name)).read_bytes()
            (d / file(name)).write_bytes(content[:int(len(content) * keep)])
        return setup

    def write(name: str, content: bytes):
        return lambda d: (d / file(name)).write_bytes(content)

    def remove(*names: str):
        return lambda d: [(d / file(n)).unlink() for n in names]

    def edit_config(change):
        def setup(d: Path) -> None:
            config = json.loads((d / file("config.json")).read_text())
            change(config)
            (d / file("config.json")).write_text(json.dumps(config, indent=2))
        return setup

    def reshape(d: Path) -> None:  # weights saved at one size, config.json edited to another afterwards
        edit_config(lambda config: config.update(hidden_size=64, intermediate_size=128))(d)

    def as_bin(keep: float):
        """The weights as an older checkpoint has them: pytorch_model.bin only (keep: the part of it left)."""
        def setup(d: Path) -> None:
            import torch
            from safetensors.torch import load_file

            torch.save(load_file(d / file("model.safetensors")), d / file("pytorch_model.bin"))
            (d / file("model.safetensors")).unlink()
            cut("pytorch_model.bin", keep)(d)
        return setup

    def copy_over(source: str, target: str):
        return lambda d: shutil.copy(d / file(source), d / file(target))

    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    return [Case(name, [command], expect, setup, mentions, note=note) for name, expect, setup, mentions, note in [
        ("model.safetensors cut to half (an interrupted download)", "error", cut("model.safetensors", 0.5),
         ("model.safetensors", "again"), ""),
        ("model.safetensors empty", "error", write("model.safetensors", b""), ("model.safetensors", "again"), ""),
        ("model.safetensors is a web page (a proxy's login page saved as it)", "error",
         write("model.safetensors", b"<!DOCTYPE html><html><body>Sign in</body></html>\n"),
         ("model.safetensors", "again"), ""),
        ("model.safetensors missing", "error", remove("model.safetensors"), ("model.safetensors", "again"), ""),
        ("pytorch_model.bin only, whole", "done", as_bin(1.0), (), "an older checkpoint"),
        ("pytorch_model.bin only, cut to half", "error", as_bin(0.5), ("pytorch_model.bin", "again"), ""),
        ("config.json without model_type", "error", edit_config(lambda config: config.pop("model_type")),
         ("config.json", "model_type", "again"), ""),
        ("config.json with a model_type this transformers does not know", "error",
         edit_config(lambda config: config.update(model_type="nosuchfamily")),
         ("config.json", "model_type", "upgrade"), ""),
        ("config.json is not JSON (cut short)", "error", cut("config.json", 0.5), ("config.json", "again"), ""),
        ("config.json empty", "error", write("config.json", b""), ("config.json", "again"), ""),
        ("config.json missing", "error", remove("config.json"), ("no config.json", "again"), ""),
        ("config.json holds a JSON list", "error", write("config.json", b"[]"), ("config.json", "again"), ""),
        ("weights of another shape (config.json's hidden_size changed after saving)", "error", reshape,
         ("config.json", "again"), ""),
        ("tokenizer.json missing (vocab.txt is there)", "done or error", remove("tokenizer.json"), (),
         "a fast tokenizer can be rebuilt from vocab.txt"),
        ("tokenizer.json cut short", "error", cut("tokenizer.json", 0.5), ("tokenizer.json", "again"), ""),
        ("tokenizer.json is binary (not UTF-8)", "error", write("tokenizer.json", b"\xff\xfe\x00\x01garbage"),
         ("tokenizer.json", "again"), ""),
        ("tokenizer.json holds another file (config.json copied over it)", "error",
         copy_over("config.json", "tokenizer.json"), ("tokenizer.json", "again"), ""),
        ("tokenizer_config.json is not JSON", "error", write("tokenizer_config.json", b"{\"do_lower_case\": tr"),
         ("tokenizer_config.json", "again"), ""),
        ("every tokenizer file missing", "error", remove(*tokenizer_files), ("tokenizer", "again"), ""),
        ("vocab.txt missing (tokenizer.json is there)", "done", remove("vocab.txt"), (),
         "tokenizer.json holds the vocabulary"),
    ]]


def damaged_census(c: Census, work: Path, model: Path, glue: Path) -> None:
    cache = work / "cache"
    command = ["--task", "sst2", "--model", "model", "--data-dir", str(glue), "--cache-dir", str(cache), *FAST]
    base = base_folder(work, "damaged", command, lambda d: shutil.copytree(model, d / "model"))
    # another seed: the base run's own command is already done, and would not load the model
    run_cases(c, "damaged", damaged_cases([*command, "--seed", "7"]), base, work,
              {str(glue): "GLUE", str(cache): "CACHE"})


# ---- own data as spreadsheets, pandas and other tools export it ---------------------

EXPORT_ROWS = [(f"a {'good' if i % 2 else 'bad'} film, the café’s {i}", "pos" if i % 2 else "neg")
               for i in range(12)]  # a comma to quote, and what cp1252 holds but ASCII does not


def delimited(rows, delimiter: str = ",", line_end: str = "\n", header=("text", "label")) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=line_end).writerows([header, *rows])
    return out.getvalue()


def xlsx(rows) -> bytes:
    """A real .xlsx (an Office Open XML zip) holding the rows as inline strings."""
    import zipfile
    from xml.sax.saxutils import escape

    def cell(column: str, row: int, text: str) -> str:
        return f'<c r="{column}{row}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'

    sheet = "".join(f'<row r="{i}">{cell("A", i, a)}{cell("B", i, b)}</row>'
                    for i, (a, b) in enumerate([("text", "label"), *rows], start=1))
    ns = "http://schemas.openxmlformats.org"
    parts = {
        "[Content_Types].xml": f'<?xml version="1.0"?><Types xmlns="{ns}/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0"?><Relationships xmlns="{ns}/package/2006/relationships"><Relationship '
        f'Id="r1" Type="{ns}/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        '</Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0"?><workbook xmlns="{ns}/spreadsheetml/2006/main" xmlns:r="{ns}/'
        'officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="r1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0"?><Relationships xmlns="{ns}/package/2006/relationships">'
        f'<Relationship Id="r1" Type="{ns}/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/>'
        '</Relationships>',
        "xl/worksheets/sheet1.xml": f'<?xml version="1.0"?><worksheet xmlns="{ns}/spreadsheetml/2006/main">'
        f'<sheetData>{sheet}</sheetData></worksheet>',
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return out.getvalue()


def pandas_export(how: str) -> bytes:
    import pandas as pd

    frame = pd.DataFrame(EXPORT_ROWS, columns=["text", "label"])
    if how == "to_csv":  # the index, unnamed, comes first: ",text,label"
        return frame.to_csv().encode()
    if how == "to_csv tsv":
        return frame.to_csv(sep="\t").encode()
    return frame.to_json(orient="records", lines=how == "to_json lines").encode()


def read_back(argv: list[str], rows, fields=("sentence",)):
    """A check that the file was read as written: the run's own configuration read again, row by row."""
    def check(folder: Path) -> list[str]:
        from glue_runner.session import configs_from_args

        cfg = configs_from_args(build_parser().parse_args(argv))[0]
        task = data.task_for(cfg)
        train = data.load_splits(task, cfg, log=lambda *a, **k: None, with_test=False)["train"].dataset
        if task.text_fields != fields:
            return [f"read as the text column(s) {list(task.columns.values())[:len(task.text_fields)]}, "
                    f"not {len(fields)} column(s) of text"]
        texts = [tuple(r[f] for f in fields) for r in train]
        if len(texts) != len(rows):
            return [f"read {len(texts)} training rows, not {len(rows)}"]
        wrong = [(got, want) for got, want in zip(texts, [r[:len(fields)] for r in rows]) if got != want]
        return [f"a text read as {wrong[0][0]!r}, written as {wrong[0][1]!r}"] if wrong else []
    return check


def export_cases(model: Path, cache: Path) -> list[Case]:
    rows = EXPORT_ROWS
    newline_rows = [(f"line one of {i}\nline two, {t}", label) for i, (t, label) in enumerate(rows)]
    plain = delimited(rows).splitlines(keepends=True)
    exports = [
        # name, file name, bytes, expected ending, what a clear error names, note, rows it must read as
        ("Excel 'CSV UTF-8' (a byte-order mark, CRLF)", "train.csv",
         ("\ufeff" + delimited(rows, line_end="\r\n")).encode(), "done", (), "", rows),
        ("Excel 'CSV' on Windows (cp1252: é and curly quotes, CRLF)", "train.csv",
         delimited(rows, line_end="\r\n").encode("cp1252"), "error", ("UTF-8",),
         "the fix today: re-save as UTF-8; an --encoding flag being added to readers.py should be named", rows),
        ("Excel 'Unicode text' (UTF-16 LE with a BOM, tabs, CRLF) as saved: .txt", "train.txt",
         ("\ufeff" + delimited(rows, "\t", "\r\n")).encode("utf-16-le"), "error", (".txt",), "", rows),
        ("Excel 'Unicode text' renamed .tsv", "train.tsv",
         ("\ufeff" + delimited(rows, "\t", "\r\n")).encode("utf-16-le"), "done or error", ("UTF-16",),
         "its byte-order mark says UTF-16: read as such, or refused naming it", rows),
        ("LibreOffice CSV separated by semicolons", "train.csv", delimited(rows, ";").encode(), "error",
         ("semicolon",), "", rows),
        ("pandas to_csv with its unnamed index column first (',text,label')", "train.csv", pandas_export("to_csv"),
         "done", (), "", rows),
        ("pandas to_csv(sep='\\t') with its index, as .tsv", "train.tsv", pandas_export("to_csv tsv"), "done", (), "",
         rows),
        ("pandas to_json(orient='records', lines=True)", "train.jsonl", pandas_export("to_json lines"), "done", (),
         "", rows),
        ("pandas to_json(orient='records'): one JSON array, as .json", "train.json", pandas_export("to_json"),
         "done or error", ("per line",), "", rows),
        ("a trailing empty line", "train.csv", "".join([*plain, "\n"]).encode(), "done", (), "", rows),
        ("a blank line in the middle", "train.csv", "".join([*plain[:6], "\n", *plain[6:]]).encode(), "done", (), "",
         rows),
        ("old Mac line ends (CR only)", "train.csv", delimited(rows, line_end="\r").encode(), "done", (), "", rows),
        ("a quoted field holding a line break (Excel, CRLF rows)", "train.csv",
         delimited(newline_rows, line_end="\r\n").encode(), "done", (), "", newline_rows),
        ("JSON lines with a byte-order mark (Notepad's 'UTF-8 with BOM')", "train.jsonl",
         ("\ufeff" + "".join(json.dumps({"text": t, "label": label}, ensure_ascii=False) + "\n" for t, label in rows))
         .encode(), "done", (), "", rows),
        ("an .xlsx workbook (a real zip)", "train.xlsx", xlsx(rows), "error", (".xlsx", "CSV UTF-8"),
         "the fix: how to save it as CSV", rows),
    ]
    if "encoding" in FIELDS:  # --encoding (readers.py) reads it as saved
        exports.append(("Excel 'CSV' on Windows, with --encoding cp1252", "train.csv",
                        delimited(rows, line_end="\r\n").encode("cp1252"), "done", (), "", rows))
    cases = []
    for name, filename, content, expect, mentions, note, expected_rows in exports:
        argv = ["--model", str(model), "--train-file", filename, "--validation-file", filename, "--cache-dir",
                str(cache), *MODEL_FAST, *(["--encoding", "cp1252"] if "--encoding" in name else [])]
        cases.append(Case(name, [argv], expect, lambda d, f=filename, b=content: Path(d, f).write_bytes(b), mentions,
                          read_back(argv, expected_rows), note))
    return cases


def exports_census(c: Census, work: Path, model: Path, glue: Path) -> None:
    cache = work / "cache"
    base = base_folder(work, "exports", ["--task", "sst2", "--model", str(model), "--data-dir", str(glue),
                                         "--cache-dir", str(cache), *FAST])
    run_cases(c, "exports", export_cases(model, cache), base, work,
              {str(model): "MODEL", str(glue): "GLUE", str(cache): "CACHE"})


# ---- round 4: a run is what its inputs made; and what else a new user meets ------------------------

def put(name: str, content: str | bytes):
    """A step that (re)writes a file of the case's folder (an edit by hand, an export)."""
    def step(folder: Path) -> None:
        Path(folder, name).write_bytes(content if isinstance(content, bytes) else content.encode())
    step.said = f"write {name}"
    return step


def runs_made(expected: int, current: tuple[str, ...] = ("train.csv", "dev.csv")):
    """A check: the folder holds this many finished runs, and the newest was made from the files as they are now."""
    def check(folder: Path) -> list[str]:
        def file_digest(path: Path) -> str:  # as glue-run records a file's content (files.file_digest)
            return hashlib.sha256(path.read_bytes()).hexdigest()[:16]

        records = sorted((json.loads(p.read_text()) for p in (folder / "results").rglob("metrics.json")),
                         key=lambda r: r.get("date", ""))
        if len(records) != expected:
            return [f"{len(records)} finished run(s), not {expected}"]
        files = records[-1].get("identity", {}).get("inputs", {}).get("files", {})
        return [f"the newest run was not made from {name} as it is now" for name in current
                if files.get(str((folder / name).resolve())) != file_digest(folder / name)]
    return check


def stopped_after_first_checkpoint(argv: list[str]):
    """A step: glue-run on argv, stopped (as Ctrl-C, a full disk or a preemption would) just after it saved its
    first checkpoint."""
    def step(folder: Path):
        from unittest import mock

        from glue_runner import results

        real = results.save_checkpoint

        def save(*args, **kwargs):
            real(*args, **kwargs)
            raise KeyboardInterrupt

        with mock.patch.object(results, "save_checkpoint", save):
            code, output = call_main([*argv, "--save-steps", "1"])
        return None if code == 130 else (code, output)  # stopped as meant: on to the next step
    step.said = "run it, stopped after its first checkpoint"
    return step


def under_torchrun(argv: list[str], processes: int = 2):
    """A step that runs glue-run under torchrun, with several processes on the CPU (gloo)."""
    def step(folder: Path):
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                               str(processes), "-m", "glue_runner.cli", *argv, "--device", "cpu"], cwd=folder,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
        return done.returncode, done.stdout + done.stderr
    step.said = f"torchrun --nproc-per-node {processes}"
    return step


def edit_model(change):
    """A step: the case's copy of the model folder changed in place (a new export to the same path)."""
    def step(folder: Path) -> None:
        change(folder / "model")
    step.said = f"change the model folder: {change.__name__}"
    return step


def new_weights(model: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(model / "model.safetensors")
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}, model / "model.safetensors")


def other_dropout(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.2}))


def changes_census(c: Census, work: Path, model: Path, glue: Path) -> None:
    """Changes of a run's inputs after it finished (or stopped): each must be a new run, said in one line, never
    'already done' nor a resume of the old checkpoint; the same inputs again must be done."""
    cache = work / "cache"
    command = ["--train-file", "train.csv", "--validation-file", "dev.csv", "--model", "model", "--cache-dir",
               str(cache), *FAST]

    def setup(base: Path) -> None:
        shutil.copytree(model, base / "model")
        (base / "train.csv").write_text(fixtures.reviews_csv())
        (base / "dev.csv").write_text(fixtures.reviews_csv(12))

    base = base_folder(work, "changes", command, setup)
    new = "made from other inputs"
    lines = fixtures.reviews_csv().splitlines()
    reordered = "\n".join([lines[0], *reversed(lines[1:])]) + "\n"
    renamed = [put("train.csv", fixtures.reviews_csv(header="review,label")),
               put("dev.csv", fixtures.reviews_csv(12, header="review,label"))]
    its_folder = f"results/runs/model/{data.safe_task_name(base.name)}-seed42"
    cases = [
        Case("the same command again", [command], "done", check=runs_made(1), says=("already done",)),
        Case("train.csv: two labels fixed by hand", [put("train.csv", fixtures.reviews_csv(flip=2)), command], "done",
             check=runs_made(2), says=(new, "train.csv changed")),
        Case("dev.csv: a label fixed by hand", [put("dev.csv", fixtures.reviews_csv(12, flip=1)), command], "done",
             check=runs_made(2), says=(new, "dev.csv changed")),
        Case("train.csv: its rows reordered", [put("train.csv", reordered), command], "done", check=runs_made(2),
             says=(new,)),
        Case("train.csv and dev.csv: the text column renamed (text -> review)", [*renamed, command], "done",
             check=runs_made(2), says=(new,)),
        Case("the model folder: new weights exported to it", [edit_model(new_weights), command], "done",
             check=runs_made(2), says=(new, "model.safetensors")),
        Case("the model folder: its config.json's dropout changed", [edit_model(other_dropout), command], "done",
             check=runs_made(2), says=(new, "config.json")),
        Case("train.csv edited, the finished run's folder as --output-dir",
             [put("train.csv", fixtures.reviews_csv(flip=2)), [*command, "--output-dir", its_folder]], "error",
             mentions=(new, "train.csv changed")),
        Case("stopped after its first checkpoint, then the same command",
             [stopped_after_first_checkpoint([*command, "--seed", "7"]), [*command, "--seed", "7"]], "done",
             check=runs_made(2), says=("resuming from",), may_change=("results/runs",)),
        Case("stopped after its first checkpoint, train.csv edited, then the same command",
             [stopped_after_first_checkpoint([*command, "--seed", "7"]), put("train.csv", fixtures.reviews_csv(flip=2)),
              [*command, "--seed", "7"]], "done", check=runs_made(2),
             says=("were made from other inputs", "the run starts over"), may_change=("results/runs",)),
        Case("the 1-process run's command under torchrun with 2 processes", [under_torchrun(command)], "done",
             check=runs_made(2), says=(new, "the processes (1 there, 2 now")),
    ]
    run_cases(c, "changes", cases, base, work, {str(model): "MODEL", str(cache): "CACHE", str(work): "WORK"})


def ctrl_c_twice(argv: list[str], gap: float):
    """A step: glue-run in a process of its own, given Ctrl-C twice, `gap` seconds apart, once it has a
    checkpoint; stopping with 130 and no traceback counts as done (what it says depends on where the second
    signal lands: "stopped by SIGINT" after the step, "interrupted" at once)."""
    def step(folder: Path):
        proc = subprocess.Popen([sys.executable, "-m", "glue_runner.cli", *argv], cwd=folder, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
        deadline = time.monotonic() + 120
        while not list(Path(folder).rglob("checkpoint-*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(2):
            proc.send_signal(signal.SIGINT)
            time.sleep(gap)
        output = proc.communicate(timeout=120)[0]
        return (0 if proc.returncode == 130 and "Traceback" not in output else proc.returncode), output
    step.said = f"Ctrl-C twice, {gap} s apart"
    return step


def round4_census(c: Census, work: Path, model: Path, glue: Path) -> None:
    """What a new user meets (issue 30): labels as lists, case twins, empty texts, a header naming a column twice,
    the training file as the dev file, repeated or contradicting sweep flags, compressed and mislabelled files,
    one class, swapped columns, scores as classes, a run folder as --model, a GPT-2-style decoder, the
    leaderboard on an empty or unwritable folder, Ctrl-C twice."""
    import gzip

    cache = work / "cache"
    m = ["--model", str(model), "--cache-dir", str(cache), *FAST]
    own = ["--train-file", "train.csv", "--validation-file", "dev.csv", *m]
    glue_run = ["--task", "rte", "--data-dir", str(glue), *m]
    base = base_folder(work, "round4", [*glue_run, "--save-model"])
    fixtures.tiny_gpt2(work / "tiny-gpt2")
    tagged = "".join(json.dumps({"text": f"the {fixtures.POSITIVE[i % 4]} cat", "tags": ["sports", "news"][:1 + i % 2]})
                     + "\n" for i in range(24))
    pandas_lists = "text,tags\n" + "".join(f'the {fixtures.POSITIVE[i % 4]} cat,"{["sports", "news"][:1 + i % 2]}"\n'
                                           for i in range(24))

    def both(text: str) -> list:
        return [put("train.csv", text), put("dev.csv", text)]

    def multi_label_named(folder: Path) -> list[str]:
        multi = [r for p in (folder / "results").rglob("metrics.json") if "f1_micro" in (r := json.loads(p.read_text()))["metrics"]]
        if not multi:
            return ["not trained as multi-label data"]
        names = sorted(multi[0].get("details", {}).get("per_label", {}).get("validation", {}))
        return [] if names == ["news", "sports"] else [f"label names {names}, not ['news', 'sports']"]

    def leaderboard_unwritable(folder: Path):
        from unittest import mock

        from glue_runner import leaderboard, tables

        def refuse(path, text):
            raise PermissionError(13, "Permission denied", str(path))

        with mock.patch.object(leaderboard, "write_atomic", refuse), mock.patch.object(tables, "write_atomic", refuse):
            return call_main(["leaderboard"])

    def leaderboard_of_an_empty_folder(folder: Path):
        (folder / "empty").mkdir()
        return call_main(["leaderboard", "--results-dir", "empty"])

    def stays_empty(folder: Path) -> list[str]:
        return [f"it wrote {p.name} into the empty folder" for p in (folder / "empty").iterdir()]

    swapped = fixtures.reviews_csv(40, text=lambda i: "pos" if i % 2 else "neg",
                                   label=lambda i: f"the {fixtures.POSITIVE[i % 4]} cat number {i}")
    run_folder = f"results/runs/{model.name}/rte-seed42"
    cases = [
        Case("JSON lines whose label is a list", [put("train.jsonl", tagged), put("dev.jsonl", tagged),
             ["--train-file", "train.jsonl", "--validation-file", "dev.jsonl", "--label-column", "tags", *m]],
             "done", check=multi_label_named),
        Case("JSON list labels, with --label-delimiter ','", [put("train.jsonl", tagged), put("dev.jsonl", tagged),
             ["--train-file", "train.jsonl", "--validation-file", "dev.jsonl", "--label-column", "tags",
              "--label-delimiter", ",", *m]], "done", check=multi_label_named),
        Case("pandas' to_csv of a column of lists", [*both(pandas_lists), [*own, "--label-column", "tags"]], "done",
             check=multi_label_named),
        Case("labels 'Pos' and 'pos'", [*both(fixtures.reviews_csv(label=lambda i: ["pos", "Pos", "neg"][i % 3])), own],
             "done", says=("differ only in case",)),
        Case("empty text cells", [*both(fixtures.reviews_csv(text=lambda i: "" if i % 5 == 0 else "the cat saw a dog")),
             own], "done", says=("have an empty text",)),
        Case("a header naming its text column twice (text,text,label)",
             [*both(fixtures.reviews_csv(header="text,text,label", text=lambda i: "the cat,a dog")), own], "error",
             mentions=("more than once",)),
        Case("the training file as the dev file", [put("train.csv", fixtures.reviews_csv()),
             ["--train-file", "train.csv", "--validation-file", "train.csv", *m]], "done",
             says=("holds the training data",)),
        Case("--seeds ''", [[*glue_run, "--seeds", ""]], "error", mentions=("--seeds is empty",)),
        Case("--seeds 1,1", [[*glue_run, "--seeds", "1,1"]], "error", mentions=("more than once",)),
        Case("--task rte,rte", [["--task", "rte,rte", "--data-dir", str(glue), *m]], "error", mentions=("twice",)),
        Case("--seed 5 beside --seeds 1,2", [[*glue_run, "--seed", "5", "--seeds", "1,2"]], "error",
             mentions=("both set",)),
        Case("train.csv.gz", [put("train.csv.gz", gzip.compress(fixtures.reviews_csv().encode())),
             put("dev.csv", fixtures.reviews_csv()), ["--train-file", "train.csv.gz", "--validation-file", "dev.csv", *m]],
             "done"),
        Case("a .tsv separated by commas", [put("train.tsv", fixtures.reviews_csv()), put("dev.tsv", fixtures.reviews_csv()),
             ["--train-file", "train.tsv", "--validation-file", "dev.tsv", *m]], "error",
             mentions=("rename it to .csv",)),
        Case("one class in the training file", [*both(fixtures.reviews_csv(label=lambda i: "pos")), own], "error",
             mentions=("at least two",)),
        Case("--label-column text (the columns swapped)", [*both(swapped), own], "error", mentions=("holds text",)),
        Case("scores without --problem-type regression",
             [*both(fixtures.reviews_csv(label=lambda i: f"{i % 9 / 2:.1f}")), own], "error",
             mentions=("--problem-type regression",)),
        Case("--model a run's folder (not its model/)", [["--task", "mrpc", "--data-dir", str(glue), "--model",
                                                          run_folder, "--cache-dir", str(cache), *FAST]],
             "done or error", mentions=(f"{run_folder}/model",)),
        Case("a GPT-2-style decoder (no padding token)", [["--task", "mrpc", "--data-dir", str(glue), "--model",
                                                          str(work / "tiny-gpt2"), "--cache-dir", str(cache), *FAST]],
             "done", says=("padding with its end-of-text token",)),
        Case("glue-run leaderboard on a folder that cannot be written", [leaderboard_unwritable], "done",
             says=("were not rewritten",)),
        Case("glue-run leaderboard on an empty folder", [leaderboard_of_an_empty_folder], "error", check=stays_empty,
             mentions=("no finished runs",)),
        *[Case(f"Ctrl-C twice, {gap * 1000:.0f} ms apart, while training", [ctrl_c_twice(
            [*glue_run, "--num-train-epochs", "3", "--save-steps", "1", "--seed", "7"], gap)], "done")
          for gap in (0.0, 0.01, 0.05, 0.2)],
    ]
    run_cases(c, "round4", cases, base, work, {str(model): "MODEL", str(glue): "GLUE", str(cache): "CACHE",
                                               str(work): "WORK"})


# ---- an empty value for every flag that takes one ----------------------------------

def subcommand_cases() -> list[tuple[str, list[list[str]]]]:
    """(what is empty, its commands) for glue-run's commands: every flag of theirs that takes a value (as
    `--flag ""` and `--flag=`), and their positionals."""
    def both(command: list[str], name: str) -> tuple[str, list[list[str]]]:
        return f"{command[0]} {name}", [[*command, name, ""], [*command, f"{name}="]]

    return [both(["leaderboard"], name) for name in ("--results-dir", "--model", "--task", "--since")] + \
        [both(["compare", "tiny-bert", "tiny-bert-b"], name) for name in ("--results-dir", "--task", "--markdown")] + \
        [("compare A", [["compare", "", "tiny-bert-b"]]), ("compare B", [["compare", "tiny-bert", ""]])] + \
        [both(["validate-submission", "results"], name) for name in ("--data-dir", "--cache-dir")] + \
        [("validate-submission FOLDER", [["validate-submission", ""]])]


def empty_census(c: Census, work: Path, model: Path, glue: Path, real_runs: bool = True) -> None:
    """`--flag ""` and `--flag=` for every flag that takes a value (and --grid, which takes several), in a
    GLUE-folder run and an own-files run with run_all stubbed; each accepted one then runs for real. Then
    the same for the commands' flags and positionals, with a results folder of two models to read."""
    root = make_case_root(work / "empty")
    cache = work / "cache"
    bases = {k: v for k, v in contexts(model, glue).items() if k in ("GLUE folder", "own files")}
    shutil.copytree(model, root / "tiny-bert-b")
    cwd = os.getcwd()
    for path in (model, root / "tiny-bert-b"):  # two models' runs, for leaderboard and compare to read
        os.chdir(root)
        try:
            code, output = call_main(["--task", "rte", "--model", str(path), "--data-dir", str(glue), "--cache-dir",
                                      str(cache), *FAST])
        finally:
            os.chdir(cwd)
        assert code == 0, output
    replace = {str(root): "ROOT", str(model): "MODEL", str(glue): "GLUE", str(cache): "CACHE"}
    stubbed = stubbed_attempts(c, root, replace)
    accepted = []
    flags = [names[0] for _, _, names in value_flags()] + ["--grid"]
    for name in flags:
        for form in ([name, ""], [f"{name}="]):
            for context, argv in bases.items():
                outcome = stubbed(f"empty: {name}", [*argv, "--cache-dir", str(cache), *form], "",
                                  f"{shown(form)} [{context}]")
                if outcome == "accepted":
                    accepted.append((name, context, form))
    for what, commands in subcommand_cases():
        for argv in commands:
            stubbed(f"empty: {what}", argv, "", shown(argv))
    if not real_runs:
        return
    for name, context, form in accepted:  # what an accepted empty value does shows once the run starts
        case_root = make_case_root(Path(tempfile.mkdtemp(dir=work, prefix="empty-real-")))
        before = snapshot(case_root)
        os.chdir(case_root)
        try:
            code, output = call_main([*bases[context], "--cache-dir", str(cache), *FAST, *form], limit=60)
        finally:
            os.chdir(cwd)
        outcome = ending(code, output, {**replace, str(case_root): "ROOT"}, ok="done")
        c.add(f"empty, real run: {name}", outcome, example=f"{shown(form)} [{context}]")
        c.lose(f"empty, real run: {name}", shown(form), changed(before, snapshot(case_root)))
        shutil.rmtree(case_root, ignore_errors=True)


# ---- concurrent runs -----------------------------------------------------------

ZYGOTE = r"""
import json, os, random, sys, time, traceback

import datasets, transformers
from glue_runner import cli, run  # imported once: the forked runs start within milliseconds of each other

datasets.disable_progress_bars()
plan = json.loads(sys.argv[1])
rng = random.Random(plan["seed"])
for rep in plan["repetitions"]:
    start = time.time() + 0.5
    children = {}
    for i, argv in enumerate(rep["argvs"]):
        offset = 0 if rep["together"] else rng.uniform(0, 1.5)
        log = os.path.join(rep["folder"], f"{rep['shape']}-process-{i}.log")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.chdir(rep["folder"])
                sys.argv = ["glue-run", *argv]
                time.sleep(max(0.0, start + offset - time.time()))
                code = cli.main(argv)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code if isinstance(code, int) else 1)
        children[pid] = i
    codes = {}
    while children:
        pid, status = os.wait()
        codes[children.pop(pid)] = os.waitstatus_to_exitcode(status)
    print(json.dumps({"folder": rep["folder"], "shape": rep["shape"], "codes": codes}), flush=True)
"""


def concurrent_census(c: Census, repetitions: int, processes: int, work: Path, model: Path, glue: Path) -> None:
    cache = work / "cache"
    common = ["--model", str(model), "--data-dir", str(glue), "--cache-dir", str(cache), *FAST]
    sweep = {"task": ["rte", "wnli"], "seeds": [1, 2]}
    reps = []
    for r in range(repetitions):
        # the same sweep by several processes; then again, now that it is done (each only reads, then
        # writes the leaderboard); and one run's --output-dir
        for shape in ("sweep", "sweep again", "output-dir"):
            folder = work / f"concurrent-{r}-{'output-dir' if shape == 'output-dir' else 'sweep'}"
            folder.mkdir(exist_ok=True)
            if shape.startswith("sweep"):
                argv = ["--task", ",".join(sweep["task"]), "--seeds", ",".join(map(str, sweep["seeds"])), *common]
            else:
                argv = ["--task", "rte", "--output-dir", "results/shared-run", *common]
            reps.append({"folder": str(folder), "shape": shape, "together": r == 0, "argvs": [argv] * processes})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    done = subprocess.run([sys.executable, "-c", ZYGOTE, json.dumps({"seed": SEED, "repetitions": reps})],
                          capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        c.add("concurrent", f"TRACEBACK the process that starts the runs: {done.stderr.strip().splitlines()[-1:]}")
        c.notes.append("TRACEBACK (concurrent) " + done.stderr[-2000:])
        return
    for line, rep in zip(done.stdout.splitlines(), reps):
        codes = {int(k): v for k, v in json.loads(line)["codes"].items()}
        check_concurrent(c, rep, codes, sweep)


def check_concurrent(c: Census, rep: dict, codes: dict[int, int], sweep: dict) -> None:
    folder, group = Path(rep["folder"]), f"concurrent: {rep['shape']}"
    logs = {i: (folder / f"{rep['shape']}-process-{i}.log").read_text(errors="replace") for i in codes}
    problems = []
    results_dir = folder / "results"
    expected = ({f"runs/tiny-bert/{t}-seed{s}" for t in sweep["task"] for s in sweep["seeds"]}
                if rep["shape"].startswith("sweep") else {"shared-run"})
    if rep["shape"] == "sweep again":  # nothing to run: every process says so, exits 0 and writes the leaderboard
        for i, code in codes.items():
            if code != 0 or f"{len(expected)} of {len(expected)} run(s) already done" not in logs[i]:
                problems.append(f"process {i} did not find every run already done (exit {code})")
        png = results_dir / "leaderboard.png"
        if not (png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"):
            problems.append("leaderboard.png is not a whole PNG")
    for i, code in codes.items():
        outcome = ending(code, logs[i], {str(folder): "ROOT"}, ok="exit 0")
        if outcome.startswith("error:") and "in use by another glue-run" not in outcome:
            problems.append(f"process {i}: {outcome}")
        if outcome == "exit 0":
            ran = sum(f"wrote {os.path.normpath(Path('results', run))}" in logs[i] for run in expected)
            outcome = f"exit 0, ran {'no' if not ran else 'one' if ran == 1 else 'several'} run(s)" + \
                (", found the others already done" if "already done" in logs[i] else "")
        c.add(group, outcome, example=f"{folder.name}, process {i}: ...{logs[i][-1000:]}")
    found = {os.path.relpath(p.parent, results_dir) for p in folder.rglob("metrics.json")}
    for run in sorted(expected - found):
        c.lose(group, folder.name, [f"{run}: no metrics.json"])
    for run in sorted(found - expected):
        problems.append(f"{run}: a run folder no run should have made")
    for run in sorted(found & expected):
        try:
            record = json.loads((results_dir / run / "metrics.json").read_text())
            assert isinstance(record["metrics"], dict)
        except Exception as e:  # noqa: BLE001
            problems.append(f"{run}/metrics.json does not parse: {e}")
        writers = sum(log.count(f"wrote {os.path.normpath(Path('results', run))}") for log in logs.values())
        if writers != (0 if rep["shape"] == "sweep again" else 1):
            problems.append(f"{run} was written by {writers} processes")
    try:
        with open(results_dir / "runs.csv", newline="") as f:
            listed = collections.Counter(row["run"] for row in csv.DictReader(f))
    except FileNotFoundError:
        listed = collections.Counter()
    if listed != collections.Counter(expected):
        problems.append(f"runs.csv lists {dict(listed)}, not each of {sorted(expected)} once")
    for problem in problems:
        c.notes.append(f"UNEXPECTED ({group}, {folder.name}) {problem}")
    c.add(group, "repetition checked: every run ended once, and is listed once" if not problems else
          f"repetition with {len(problems)} problem(s) — UNEXPECTED")


# ---- the report ----------------------------------------------------------------

def family(outcome: str) -> str | None:
    """Which count an outcome adds to; None for lines that are no case (skipped, checks of a repetition)."""
    if outcome.startswith(("skipped", "not run", "repetition")):
        return None
    if is_bug(outcome):
        return "tracebacks"
    if outcome.startswith(("error:", "usage error:")):
        return "clear errors"
    return "accepted/parsed"


def summary(c: Census) -> dict[str, collections.Counter]:
    """group family (readers, flags, ...) -> counts, and "all"."""
    out = collections.defaultdict(collections.Counter)
    for (group, outcome), n in c.counts.items():
        for key in (group.split(":")[0], "all"):
            if family(outcome):
                out[key]["cases"] += n
                out[key][family(outcome)] += n
            out[key]["unexpected"] += n * ("UNEXPECTED" in outcome)
    for group, n in c.lost.items():
        for key in (group.split(":")[0], "all"):
            out[key]["results lost"] += n
    return out


def line(name: str, counts) -> str:
    return (f"{name}: {counts['cases']} cases tried, {counts['accepted/parsed']} accepted/parsed, "
            f"{counts['clear errors']} clear errors, {counts['tracebacks']} tracebacks, "
            f"{counts['results lost']} results lost, {counts['unexpected']} unexpected")


GROUPS = ("readers", "flags", "folders", "concurrent", "models", "damaged", "exports", "empty", "changes", "round4")


def run_census(examples: int = 100, real_runs: int = 1, repetitions: int = 2, processes: int = 4,
               only: tuple[str, ...] = GROUPS, special_values: int | None = None,
               quick_folders: bool = False, model: Path | None = None, glue: Path | None = None) -> Census:
    """The whole census, or a smaller one: special_values (per flag, default all), quick_folders (only
    the scenarios that end before a model loads); real_runs 0 also leaves out the empty group's real runs;
    model and glue: the tiny BERT and GLUE folder to use (default: made here)."""
    import datasets

    datasets.disable_progress_bars()
    c = Census()
    work = Path(tempfile.mkdtemp(prefix="glue-census-"))
    cwd = os.getcwd()
    try:
        model = model or fixtures.make_tiny_bert(work / "fixture")
        glue = glue or fixtures.make_glue_dir(work / "fixture")
        if "readers" in only:
            reader_census(c, examples)
        if "flags" in only:
            flag_census(c, examples, real_runs, work, model, glue, special_values)
        if "folders" in only:
            folder_census(c, work, model, glue, quick_folders)
        if "concurrent" in only:
            concurrent_census(c, repetitions, processes, work, model, glue)
        if "models" in only:
            models_census(c, work, model, glue)
        if "damaged" in only:
            damaged_census(c, work, model, glue)
        if "exports" in only:
            exports_census(c, work, model, glue)
        if "empty" in only:
            empty_census(c, work, model, glue, real_runs=bool(real_runs))
        if "changes" in only:
            changes_census(c, work, model, glue)
        if "round4" in only:
            round4_census(c, work, model, glue)
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
    return c


def report(c: Census) -> str:
    lines = []
    for (group, outcome), n in sorted(c.counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
        lines.append(f"{n:6d}  {group:28s}  {outcome}")
        if (group, outcome) in c.examples:
            lines.append(f"{'':6s}  {'':28s}    e.g. {c.examples[(group, outcome)]}")
    lines += c.notes
    counts = summary(c)
    lines += [line(name, counts[name]) for name in ("readers", "flags", "flags, real run", "folders", "concurrent",
                                                    "models", "damaged", "exports", "empty", "empty, real run",
                                                    "changes", "round4")
              if name in counts]
    lines.append(line("census", counts["all"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("examples_positional", nargs="?", type=int, help=argparse.SUPPRESS)
    p.add_argument("--examples", type=int, default=100, help="hypothesis examples per reader and per flag (100)")
    p.add_argument("--real-runs", type=int, default=1, help="accepted special values run for real, per flag (1)")
    p.add_argument("--repetitions", type=int, default=2, help="rounds of each concurrent-runs shape (2)")
    p.add_argument("--processes", type=int, default=4, help="glue-run processes started together (4)")
    p.add_argument("--only", default=",".join(GROUPS), help=f"comma list of groups to run, of {', '.join(GROUPS)}")
    args = p.parse_args(argv)
    unknown = [g for g in args.only.split(",") if g not in GROUPS]
    if unknown:
        p.error(f"--only: no group {', '.join(unknown)}; the groups are {', '.join(GROUPS)}")
    started = time.perf_counter()
    c = run_census(args.examples_positional or args.examples, args.real_runs, args.repetitions, args.processes,
                   tuple(args.only.split(",")))
    print(report(c))
    print(f"({time.perf_counter() - started:.0f} s)")
    counts = summary(c)["all"]
    return 1 if counts["tracebacks"] or counts["results lost"] or counts["unexpected"] else 0


if __name__ == "__main__":
    sys.exit(main())
