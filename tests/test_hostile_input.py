"""Hostile input at every reader: parsed rows or one GlueRunnerError naming the file, nothing else.

Every task's GLUE TSV files (data.load_splits with --data-dir) and the user-file
readers (CSV, TSV, JSONL) get random bytes, latin-1 and UTF-16 text, huge fields,
missing and extra columns, empty and header-only files, \\r\\n and \\r line ends and
NUL bytes. When a file parses, every record in it is accounted for: it became a
row or it was counted in RawSplit.skipped (never silently dropped).

tests/hostile_input_census.py runs the same strategies and counts the outcomes.
"""

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glue_runner import data
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError
from glue_runner.tasks import get_task, glue_tasks

GLUE_ORDER = [t.name for t in glue_tasks()]

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow])

# Text cells: words, the task's own label names, and the characters readers trip on.
NASTY = ["\t", "\n", "\r", "\r\n", "\x00", '"', "'", ",", "\ufeff", "\u2028", "\x85", "é", "😀", "\\", " ", "nan",
         "-1", "1e309", "²"]
cell = st.one_of(st.sampled_from(["0", "1", "2", "3.5", "entailment", "not_entailment", "neutral", "contradiction",
                                  "", "the cat sat"]),
                 st.lists(st.sampled_from(list("ab 01") + NASTY), max_size=8).map("".join),
                 st.text(max_size=8),
                 st.just("x" * 300_000))  # a huge field (csv's default limit is 128 KiB)
line_end = st.sampled_from(["\n", "\r\n", "\r"])
encoding = st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "latin-1", "utf-16"])


clean = st.text(st.characters(blacklist_characters="\t\n\r,\"", blacklist_categories=("Cs",)), max_size=20)


@st.composite
def table(draw, columns: dict, labels: list[str]) -> bytes:
    """A delimited file for `columns` (our column -> header name, or index without a header):
    mostly well-formed rows with odd text, plus short, long, shuffled and random rows."""
    if all(isinstance(c, str) for c in columns.values()):
        names = list(columns.values()) + draw(st.lists(st.sampled_from(["extra", "idx", "label"]), max_size=2))
        names = draw(st.one_of(st.just(names), st.permutations(names), st.lists(st.sampled_from(names), max_size=4)))
        header, position = [names], {ours: names.index(c) for ours, c in columns.items() if c in names}
    else:
        header, position = [], dict(columns)
    width = max([len(h) for h in header] + [i + 1 for i in position.values()])

    def well_formed(_) -> st.SearchStrategy:
        label = st.sampled_from(labels) if labels else st.floats(0, 5).map(str)
        by_position = {i: ours for ours, i in position.items()}
        return st.tuples(*[label if by_position.get(i) == "label" else st.one_of(clean, cell)
                           for i in range(width)]).map(list)

    row = st.one_of(st.just(None).flatmap(well_formed), st.just(None).flatmap(well_formed),
                    st.lists(cell, max_size=width + 2))
    rows = draw(st.lists(row, max_size=6))
    if header and draw(st.integers(0, 4)) == 0:
        header = []  # a file that lost its header
    sep = draw(st.sampled_from(["\t", "\t", ","]))
    text = draw(line_end).join(sep.join(r) for r in header + rows) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return encode(draw, text)


def encode(draw, text: str) -> bytes:
    enc = draw(encoding)
    try:
        return text.encode(enc)
    except UnicodeEncodeError:  # latin-1 cannot hold everything: the strategy still gets bytes
        return text.encode(enc, errors="replace")


@st.composite
def jsonl(draw, keys: list[str], labels: list[str]) -> bytes:
    """JSON lines: mostly records with every key and a plausible label, plus odd values and odd lines."""
    import json

    value = st.one_of(cell, st.integers(-5, 5), st.floats(), st.none(), st.booleans(), st.lists(st.integers(), max_size=2),
                      st.just(10 ** 30), st.just("\ud800"))
    label = st.one_of(st.sampled_from(labels) if labels else st.floats(0, 5), st.integers(0, 2), value)
    complete = st.fixed_dictionaries({k: label if k == "label" else st.one_of(clean, value) for k in keys},
                                     optional={"extra": value})
    records = draw(st.lists(st.one_of(complete, complete, st.dictionaries(st.sampled_from(keys + ["extra"]), value)),
                            max_size=6))
    lines = [json.dumps(r, ensure_ascii=draw(st.booleans())) for r in records]
    lines += draw(st.lists(st.sampled_from(["", "[1, 2]", "{", "null", "1" * 5000, "[" * 5000 + "]" * 5000,
                                            '{"a": NaN}', "\x00"]), max_size=2))
    return encode(draw, draw(line_end).join(lines))


any_bytes = st.binary(max_size=300)


def hostile(files: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly files of the right shape (so parsing paths run too), else random bytes or empty files."""
    return st.one_of(files, files, files, any_bytes, st.sampled_from([b"", b"\n\n", b"\r\n", b"\x00"]))


def decoded(raw: bytes) -> str | None:
    """The text a reader may read from the bytes: UTF-16 when they start with its byte-order mark (Excel's
    "Unicode text"), else UTF-8 (a byte-order mark skipped); None when they are not that text."""
    try:
        return raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def data_records(raw: bytes, header: bool) -> int | None:
    """Independent count of the records in a GLUE TSV (no quoting: one record per non-empty line).
    None when the bytes are not text a reader may read (it must then refuse the file)."""
    text = decoded(raw)
    if text is None:
        return None
    lines = [line for line in re.split(r"\r\n|\r|\n", text) if line != ""]
    return max(0, len(lines) - header)


def check_outcome(action, path: Path):
    """Run the reader: return its splits, or None after checking the error names the file."""
    try:
        return action()
    except GlueRunnerError as e:
        message = str(e)
        assert "\n" not in message.strip(), message  # one line
        assert str(path) in message, message
        return None


GLUE_FILES = [(name, split, filename) for name in GLUE_ORDER for split, spec in get_task(name).splits.items() for filename in [spec.file]]


@pytest.mark.parametrize("task_name, split, filename", GLUE_FILES, ids=[f"{t}-{s}" for t, s, _ in GLUE_FILES])
@SETTINGS
@given(content=st.data())
def test_glue_tsv_readers(glue_dir, tmp_path, task_name, split, filename, content):
    task = get_task(task_name)
    folder = tmp_path / "glue" / task.glue_dir
    if not folder.exists():
        shutil.copytree(glue_dir / task.glue_dir, folder)
    columns = task.columns_for(split)
    has_header = all(isinstance(c, str) for c in columns.values())
    raw = content.draw(hostile(table(columns, list(task.label_names))))
    path = folder / filename
    path.write_bytes(raw)
    cfg = RunConfig(task=task_name, model="x", data_dir=tmp_path / "glue")
    splits = check_outcome(lambda: data.load_splits(task, cfg, log=lambda *a: None), path)
    if splits is not None:
        got = splits[split]
        assert len(got.dataset) > 0
        expected = data_records(raw, has_header)
        assert expected is not None, "a file that is not UTF-8 (nor UTF-16 with its byte-order mark) was read"
        assert len(got.dataset) + got.skipped == expected  # every record kept or counted as skipped


USER_TASKS = ["sst2", "stsb", "mnli"]  # single sentence, regression, three labels


@pytest.mark.parametrize("task_name", USER_TASKS)
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
@SETTINGS
@given(content=st.data())
def test_user_file_readers(tmp_path, task_name, suffix, content):
    task = get_task(task_name)
    keys = [*task.text_fields, "label"]
    labels = list(task.label_names)
    strategy = jsonl(keys, labels) if suffix == ".jsonl" else table({k: k for k in keys}, labels)
    raw = content.draw(hostile(strategy))
    path = tmp_path / f"train{suffix}"
    path.write_bytes(raw)
    good = tmp_path / "validation.jsonl"
    good.write_text('{"%s": "a b", "%s": "%s", "label": "%s"}\n' % (
        task.text_fields[0], task.text_fields[-1], "c d", task.label_names[0] if task.label_names else "2.5"))
    cfg = RunConfig(task=task_name, model="x", train_file=path, validation_file=good)
    splits = check_outcome(lambda: data.load_splits(task, cfg, log=lambda *a: None), path)
    if splits is not None:
        got = splits["train"]
        assert len(got.dataset) > 0
        labels = got.dataset["label"]
        assert all(label == label and abs(label) != float("inf") for label in labels)  # no NaN/inf label
        if suffix == ".jsonl":
            records = [line for line in re.split(r"\r\n|\r|\n", decoded(raw)) if line.strip()]
            assert len(got.dataset) == len(records) and got.skipped == 0


# The holes the properties above found (or could), pinned so every run checks them.
HOLES = [
    (".jsonl", '{"sentence": "a", "label": ' + "1" * 5000 + "}\n", "t.jsonl:1: not a JSON object"),
    (".jsonl", "[" * 5000 + "]" * 5000 + "\n", "t.jsonl: a JSON array; glue-run reads JSON lines"),
    (".jsonl", '{"sentence": "\\ud800", "label": 1}\n', "t.jsonl:1: sentence holds invalid Unicode"),
    (".jsonl", '{"sentence": null, "label": 1}\n', "t.jsonl:1: sentence is None, not text"),
    (".csv", "sentence,label\na,\u00b2\n", "t.csv:2: label '\u00b2' is not one of sst2's labels"),
    (".csv", "sentence,label\n" + "a,1\n" * 3000 + "caf\xe9,1\n", "t.csv: not UTF-8 text (line 3002)"),
    (".csv", "x" * 300_000 + ",y\n", "the header has 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…', 'y'."),
]


@pytest.mark.parametrize("suffix, text, message", HOLES)
def test_known_holes_are_clear_errors(tmp_path, suffix, text, message):
    path = tmp_path / f"t{suffix}"
    path.write_bytes(text.encode("latin-1" if "\xe9" in text else "utf-8", errors="surrogatepass"))
    cfg = RunConfig(task="sst2", model="x", train_file=path, validation_file=path)
    with pytest.raises(GlueRunnerError) as e:
        data.load_splits(get_task("sst2"), cfg, log=lambda *a: None)
    assert message in str(e.value) and len(str(e.value)) < 400


@pytest.mark.parametrize("label", ["nan", "inf", "-inf", "1e309", "3.4028235677973366e+38"])  # the last: inf as a float32
def test_regression_labels_must_be_finite(tmp_path, label):
    path = tmp_path / "t.csv"
    path.write_text(f"sentence1,sentence2,label\na,b,{label}\n")
    cfg = RunConfig(task="stsb", model="x", train_file=path, validation_file=path)
    with pytest.raises(GlueRunnerError, match=re.escape(f"t.csv:2: label '{label}' is not a finite number")):
        data.load_splits(get_task("stsb"), cfg, log=lambda *a: None)


def test_glue_test_index_beyond_int64(tmp_path, glue_dir):
    shutil.copytree(glue_dir / "SST-2", tmp_path / "SST-2")
    (tmp_path / "SST-2" / "test.tsv").write_text("index\tsentence\n99999999999999999999\ta\n")
    with pytest.raises(GlueRunnerError, match=r"test.tsv:2: index '99999999999999999999' is too large"):
        data.load_splits(get_task("sst2"), RunConfig(task="sst2", model="x", data_dir=tmp_path), log=lambda *a: None)


def test_a_small_census_finds_no_traceback_and_loses_no_result(tiny_bert, glue_dir):
    """tests/hostile_input_census.py, cut down (2 examples per reader and flag, the first 2 special
    values of each flag, the folder scenarios that end before a model loads, the damaged model
    folders, an empty value for every flag without its real runs; no concurrent runs, no other
    model families, no exported files), so the census cannot rot: every case tried ends parsed,
    accepted, finished or as one clear error."""
    import hostile_input_census as census

    c = census.run_census(examples=2, real_runs=0, only=("readers", "flags", "folders", "damaged", "empty"),
                          special_values=2, quick_folders=True, model=tiny_bert, glue=glue_dir)
    counts = census.summary(c)
    assert counts["readers"]["cases"] >= 2 * len(GLUE_FILES) and counts["flags"]["cases"] > 200
    assert counts["folders"]["cases"] >= 10 and counts["folders"]["clear errors"] >= 8
    assert counts["damaged"]["cases"] >= 15 and counts["damaged"]["clear errors"] >= 12
    # both spellings of an empty value, in two commands, for every flag that takes one
    assert counts["empty"]["cases"] >= 4 * len(census.value_flags())
    assert counts["all"]["tracebacks"] == 0 and counts["all"]["results lost"] == 0, census.report(c)
    assert counts["all"]["unexpected"] == 0, census.report(c)
