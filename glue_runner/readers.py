"""Reading one file into a `datasets.Dataset`: GLUE's TSV layout and your own CSV, TSV and
JSON-lines files, with the rows, columns and labels checked as they are read. A malformed
row, a label the task does not know, a file that is not UTF-8: each is one line naming the
file, the line and the fix.

`datasets` is imported where it is used: the checks made before a run starts answer in a
fraction of a second, without loading the libraries.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import GlueRunnerError
from .files import file_digest
from .tasks import TaskSpec

if TYPE_CHECKING:
    import datasets

csv.field_size_limit(sys.maxsize)  # a single GLUE field can exceed csv's 128 KiB default

def column_names(path: Path, encoding: str = "utf-8") -> list[str]:
    """The column names of one of your files: a CSV/TSV's first row, a JSON-lines file's first object's keys."""
    _check_suffix(path)
    with text_file(path, encoding, newline="") as f:
        if path.suffix in (".json", ".jsonl"):
            first = next((line for line in f if line.strip()), "{}")
            if first.lstrip().startswith("["):
                raise _json_array(path)
            try:
                return list(json.loads(first))
            except (ValueError, TypeError):
                raise GlueRunnerError(f"{path}:1: not a JSON object; one object per line") from None
        return next(csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ","), [])


@dataclass(frozen=True)
class LabelSet:
    """A training file's labels: their names, sorted (numbers as numbers), so a file's rows in any order give
    the same label order, and so the same model outputs; whether they came as lists (a JSON list, or its text
    as pandas writes a list column), which makes the task multi-label; and the rows they came from."""
    names: tuple[str, ...]
    listed: bool
    rows: int


def label_set(path: Path, task: TaskSpec, encoding: str = "utf-8") -> LabelSet:
    """The labels of a training file."""
    columns = {"label": task.columns["label"]}
    rows, _ = read_rows(path, task, "train", columns, quoting_of(task), encoding)
    found, listed = set(), False
    for line_num, row in rows:
        listed = listed or label_list(row["label"]) is not None
        labels = labels_of(row["label"], task)
        if not labels and not task.multi_label and label_list(row["label"]) is None:  # (a label set may be empty)
            raise GlueRunnerError(f"{path}:{line_num}: the label (column {shown([columns['label']])}) is empty; give "
                                  "every training row its label, or remove the row")
        found.update(labels)
    if not found:
        raise GlueRunnerError(f"{path}: no labels in column {shown([columns['label']])}; check the file")
    if len(found) > 200 and len(found) > len(rows) / 2:
        raise GlueRunnerError(
            f"{path}: column {shown([columns['label']])} holds {len(found):,} different values in {len(rows):,} rows, "
            "too many to be classes; if they are scores, pass --problem-type regression, and if the column is text, "
            "name the label column with --label-column")
    names = tuple(sorted(found, key=lambda n: (0, int(n), "") if n.isascii() and n.isdigit() else (1, 0, n)))
    return LabelSet(names, listed, len(rows))


def label_list(value) -> list[str] | None:
    """A label field holding a list, a label set: a JSON list (["sports", "politics"]), or a list's text as pandas
    writes it to CSV (['sports', 'politics']); its labels, else None."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.startswith("[") and text.endswith("]")):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
    if not isinstance(value, list):
        return None
    return [str(item).strip() for item in value if str(item).strip()]


def labels_of(value, task: TaskSpec) -> list[str]:
    """The labels one row's label field gives: a list's items; else the text, split by the delimiter for
    multi-label data."""
    listed = label_list(value)
    if listed is not None:
        return listed
    text = str(value).strip()
    if not task.multi_label:
        return [text] if text else []
    return _split_labels(text, task)


def _split_labels(text: str, task: TaskSpec) -> list[str]:
    return [label.strip() for label in text.split(task.label_delimiter) if label.strip()]


@dataclass
class RawSplit:
    dataset: datasets.Dataset
    source: str  # file or Hub address, for messages and the cache key
    fingerprint: str
    skipped: int = 0  # rows dropped for being short of columns
    available: int | None = None  # its examples before --max-*-samples took the first N
    empty: list[int] = field(default_factory=list)  # the lines whose text (a text of a pair) is empty: kept, and said


def quoting_of(task: TaskSpec) -> int:
    return csv.QUOTE_NONE if task.quoting == "none" else csv.QUOTE_MINIMAL


# how to get a readable file out of the programs that write these
EXPORT_HINTS = {".xlsx": "; in Excel or LibreOffice, save it as \"CSV UTF-8 (Comma delimited)\" (.csv)",
                ".xls": "; in Excel or LibreOffice, save it as \"CSV UTF-8 (Comma delimited)\" (.csv)",
                ".ods": "; in LibreOffice, save it as \"Text CSV\" with UTF-8 and commas (.csv)",
                ".txt": "; Excel's \"Unicode text\" is tab separated: rename it to .tsv",
                ".parquet": "; with pandas: pd.read_parquet(path).to_csv('data.csv', index=False)"}


def _check_suffix(path: Path) -> None:
    if path.suffix not in (".csv", ".tsv", ".json", ".jsonl"):
        raise GlueRunnerError(f"{path}: unsupported file type '{path.suffix}'; use .csv, .tsv, .json or .jsonl"
                              + EXPORT_HINTS.get(path.suffix.lower(), ""))


def read_rows(path: Path, task: TaskSpec, split: str, columns: dict, quoting: int,
              encoding: str = "utf-8") -> tuple[list, int]:
    """(line number, {our column: the file's value}) per row, and how many rows were short of columns."""
    _check_suffix(path)
    if path.suffix in (".json", ".jsonl"):
        return _read_jsonl(path, columns, encoding), 0
    return _read_table(path, task, split, columns, delimiter="," if path.suffix == ".csv" else "\t", quoting=quoting,
                       header=all(isinstance(c, str) for c in columns.values()), encoding=encoding)


# More lines than this in one quoted field is an unclosed quote, not a long text with line breaks
QUOTED_LINES = 100


def _read_table(path: Path, task: TaskSpec, split: str, columns: dict, *, delimiter, quoting,
                header, encoding: str) -> tuple[list, int]:
    """Read a delimited file; `columns` maps our column to a header name or, without a header, an index."""
    rows, skipped = [], 0
    try:
        with text_file(path, encoding, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
            if header:
                names = next(reader, None)
                if names is None:
                    raise GlueRunnerError(f"{path} is empty; it should hold the {task.name} {split} split")
                check_header(path, names, list(columns.values()))
                missing = [c for c in columns.values() if c not in names]
                if missing:
                    raise GlueRunnerError(
                        f"{path}:1: missing column(s) {shown(missing)}; the header has "
                        f"{shown(names)}. Rename the columns, or for your own files pass "
                        "--text-columns/--label-column")
                positions = {ours: names.index(theirs) for ours, theirs in columns.items()}
                width = len(names)
            else:
                positions = dict(columns)
                width = max(positions.values()) + 1
            previous = reader.line_num
            for row in reader:
                if reader.line_num - previous > QUOTED_LINES:
                    raise GlueRunnerError(
                        f"{path}:{previous + 1}: a quoted field runs over {reader.line_num - previous:,} lines; a "
                        "quote that is never closed takes the rest of the file with it. Close it (a quote inside a "
                        "field is written \"\"), or, for raw text whose quotes are text, use a task file of your "
                        "own with quoting: none")
                previous = reader.line_num
                if not row or row == [""]:
                    continue  # a blank line, as at the end of some files
                if len(row) < width:
                    skipped += 1
                    continue
                rows.append((reader.line_num, {ours: row[i] for ours, i in positions.items()}))
    except csv.Error as e:
        raise GlueRunnerError(f"{path}:{reader.line_num + 1}: unreadable as "
                              f"{'TSV' if delimiter == chr(9) else 'CSV'} ({e})") from None
    return rows, skipped


def check_header(path: Path, header: list[str], wanted: list) -> None:
    """A header whose columns are separated by another character than the file's type says (a .tsv of commas,
    LibreOffice's semicolons), or that names a column it is asked for twice, is one clear error."""
    separators = {",": "commas", ";": "semicolons", "\t": "tabs"}
    if len(header) == 1 and not all(c in header for c in wanted):
        found = next((sep for sep in separators if sep in header[0]), None)
        if found:
            fix = {",": "rename it to .csv", "\t": "rename it to .tsv"}.get(found, "save it again with commas as the "
                                                                               "separator, or as tab-separated text (.tsv)")
            raise GlueRunnerError(f"{path}: its columns are separated by {separators[found]} ({shown(header[0].split(found))}), "
                                  f"not by {'tabs' if path.suffix == '.tsv' else 'commas'} as its name says; {fix}")
    twice = sorted({c for c in wanted if isinstance(c, str) and header.count(c) > 1})
    if twice:
        raise GlueRunnerError(f"{path}:1: the header names column {shown(twice)} more than once; rename them so that "
                              "each column has a name of its own")


def _json_array(path: Path) -> GlueRunnerError:
    return GlueRunnerError(f"{path}: a JSON array; glue-run reads JSON lines, one object per line (pandas: "
                           "df.to_json(path, orient='records', lines=True))")


def _read_jsonl(path: Path, columns: dict, encoding: str) -> list:
    rows = []
    with text_file(path, encoding) as f:
        for line_num, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if not rows and line.lstrip().startswith("["):
                raise _json_array(path)
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as e:  # bad JSON, a number of 5000 digits, [[[[...]]]]
                reason = e.msg if isinstance(e, json.JSONDecodeError) else str(e).split(":")[0]
                raise GlueRunnerError(f"{path}:{line_num}: not a JSON object ({reason}); one object per line") from None
            if not isinstance(record, dict):
                raise GlueRunnerError(f"{path}:{line_num}: not a JSON object; one object per line")
            missing = [c for c in columns.values() if c not in record]
            if missing:
                raise GlueRunnerError(
                    f"{path}:{line_num}: missing key(s) {shown(missing)}; the record has "
                    f"{shown(list(record))}. Pass --text-columns/--label-column to name them")
            rows.append((line_num, {ours: record[theirs] for ours, theirs in columns.items()}))
    return rows


@contextmanager
def text_file(path: Path, encoding: str = "utf-8", **kwargs):
    """A data file opened as text in `encoding` (--encoding); one that starts with a UTF-16 byte-order
    mark (Excel's "Unicode text") as UTF-16 whatever it says. Failing to decode or read it is one
    clear error."""
    try:
        with open(path, "rb") as f:
            utf16 = f.read(2) in UTF16_MARKS
        # utf-8-sig: MRPC's files start with a byte-order mark that would otherwise stick to the first name
        with open(path, encoding="utf-16" if utf16 else "utf-8-sig" if is_utf8(encoding) else encoding, **kwargs) as f:
            yield f
    except UnicodeError:
        raise _not_utf8(path) if is_utf8(encoding) else GlueRunnerError(
            f"{path}: not {encoding} text; pass the --encoding it was saved in, or re-save it as UTF-8") from None
    except OSError as e:  # a folder, no permission, ...
        raise GlueRunnerError(f"{path}: cannot be read ({e.strerror})") from None


UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def is_utf8(encoding: str) -> bool:
    import codecs

    return codecs.lookup(encoding).name == "utf-8"


def _not_utf8(path: Path) -> GlueRunnerError:
    # The decoder's error position is within its read buffer, not the file: find the place again.
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
        return GlueRunnerError(f"{path}: not UTF-8 text; re-save the file as UTF-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        if e.reason == "unexpected end of data" and e.end == len(raw):
            # UTF-8 text cut inside a character: the file is incomplete, not in another encoding
            return GlueRunnerError(f"{path}: ends in the middle of a UTF-8 character (line {line}): the file was cut "
                                   "short; copy or export it again in full")
    return GlueRunnerError(f"{path}: not UTF-8 text (line {line}); pass the encoding it was saved in (Excel's CSV on "
                           "Windows: --encoding cp1252; elsewhere often latin-1), or re-save it as UTF-8")


def shown(values: list, limit: int = 8) -> str:
    """Names for a message: a few, each cut short (a binary file's 'header' can be megabytes)."""
    shown = [repr(v if len(str(v)) <= 40 else str(v)[:40] + "…") for v in values[:limit]]
    return ", ".join(shown) + (f", … ({len(values)} in all)" if len(values) > limit else "")


def to_dataset(rows: list, path: Path, task: TaskSpec, split: str, skipped: int, reading: tuple) -> RawSplit:
    data = {"idx": [], **{f: [] for f in task.text_fields}}
    has_labels = not split.startswith("test")
    if has_labels:
        data["label"] = []
    unknown = {}  # a label outside the task's set -> the first line it is on: all are named at the end
    empty = []
    for position, (line_num, row) in enumerate(rows):
        data["idx"].append(_parse_index(row.get("idx"), position, path, line_num))
        for f in task.text_fields:
            data[f].append(_parse_text(row[f], f, path, line_num))
        if not all(data[f][-1].strip() for f in task.text_fields):
            empty.append(line_num)
        if has_labels:
            data["label"].append(_parse_label(row, task, path, line_num, unknown))
    if unknown:
        raise _unknown_labels(unknown, task, path, split)
    import datasets

    features = {"idx": datasets.Value("int64"), **{f: datasets.Value("string") for f in task.text_fields}}
    if has_labels:
        features["label"] = (datasets.Value("float32") if task.regression else
                             datasets.Sequence(datasets.Value("float32"), length=task.num_labels) if task.multi_label
                             else datasets.ClassLabel(names=list(task.label_names)))
    dataset = datasets.Dataset.from_dict(data, features=datasets.Features(features))
    return RawSplit(dataset, str(path), _file_fingerprint(path, f"{split}|{reading}"), skipped, empty=empty)


def _file_fingerprint(path: Path, split: str) -> str:
    # the file's content, not its size and time: a file rewritten within the same second keeps both
    return hashlib.sha256(f"{file_digest(path)}|{split}".encode()).hexdigest()[:16]


def _parse_text(value, field: str, path: Path, line_num: int) -> str:
    # JSON can hold null, lists and objects (str() would train on "None"), and lone surrogates
    # ("\ud800"), which no tokenizer or Arrow column accepts.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            raise GlueRunnerError(f"{path}:{line_num}: {field} holds invalid Unicode (a lone surrogate)") from None
    raise GlueRunnerError(f"{path}:{line_num}: {field} is {shown([value])}, not text")


def _parse_index(value, position: int, path: Path, line_num: int) -> int:
    if value is None:
        return position  # files without an index column are numbered in order
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise GlueRunnerError(f"{path}:{line_num}: index {shown([value])} is not an integer") from None
    if not -2**63 <= index < 2**63:  # the column is int64
        raise GlueRunnerError(f"{path}:{line_num}: index {shown([value])} is too large")
    return index


def _parse_label(row: dict, task: TaskSpec, path: Path, line_num: int, unknown: dict):
    """The row's label: a score (regression), the label's position in label_names, or for
    multi_label a 0/1 vector over them. A label may be written as its name (MNLI's 'entailment')
    or its position (CoLA's '1'); one outside the task's set goes into `unknown`."""
    if task.label_columns:
        return [_parse_flag(row[("label", name)], name, path, line_num) for name in task.label_columns]
    if task.regression or not task.multi_label:
        if label_list(row["label"]) is not None:
            raise GlueRunnerError(f"{path}:{line_num}: the label is a list of labels, but {task.name} is "
                                  f"{'a regression task' if task.regression else 'single-label'}; a list is a "
                                  "label set, for multi-label data (problem_type: multi_label)")
    text = str(row["label"]).strip()
    if task.regression:
        try:
            score = float(text)
        except ValueError:
            raise GlueRunnerError(
                f"{path}:{line_num}: label {shown([text])} is not a number ({task.name} is a regression task)") from None
        # 'nan', 'inf' and '1e309' parse, and would make the loss NaN; so would 3.5e38, inf as a float32
        if not (math.isfinite(score) and abs(score) < 3.4028234e38):
            raise GlueRunnerError(f"{path}:{line_num}: label {shown([text])} is not a finite number (within "
                                  "float32's range, as scores are kept)")
        return score
    positions = []
    for label in labels_of(row["label"], task) if task.multi_label else [text]:
        if label in task.label_names:
            positions.append(task.label_names.index(label))
        elif not task.labels_from_data and label.isascii() and label.isdigit() and int(label) < task.num_labels:
            positions.append(int(label))  # (isdigit alone takes '²')
        else:
            unknown.setdefault(label, line_num)
    if not task.multi_label:
        return positions[0] if positions else 0  # 0 stands in for an unknown label: the split is refused below
    return [1.0 if i in positions else 0.0 for i in range(task.num_labels)]


def _parse_flag(value, name: str, path: Path, line_num: int) -> float:
    text = str(value).strip().lower()
    if text in ("1", "1.0", "true"):
        return 1.0
    if text in ("0", "0.0", "false", ""):
        return 0.0
    raise GlueRunnerError(f"{path}:{line_num}: label column {shown([name])} holds {shown([value])}, not 0 or 1")


def _unknown_labels(unknown: dict, task: TaskSpec, path: Path, split: str) -> GlueRunnerError:
    names = ", ".join(f"{i}={n}" for i, n in enumerate(task.label_names[:20]))
    names += f", … ({len(task.label_names)} in all)" if len(task.label_names) > 20 else ""
    labels, first = list(unknown), min(unknown.values())
    what = f"label {shown(labels)}" if len(labels) == 1 else f"labels {shown(labels)} (the first)"
    if not task.own:
        return GlueRunnerError(f"{path}:{first}: {what} is not one of {task.name}'s labels ({names}); fix the row or "
                               "pick the right --task")
    return GlueRunnerError(
        f"{path}:{first}: {what} {'is' if len(labels) == 1 else 'are'} not among {task.name}'s labels ({names}), "
        f"which come from {'its task file' if task.source.endswith(('.yaml', '.yml')) else 'the training file'}: a "
        f"label seen only in the {split} split cannot be learned; add examples of it to the training data, or "
        "remove those rows")


def read_texts(path: Path, encoding: str = "utf-8") -> RawSplit:
    """A texts file as a split with one `text` per non-blank line."""
    import datasets

    with text_file(path, encoding) as f:
        lines = list(text_lines(f))
    return RawSplit(datasets.Dataset.from_dict({"text": lines}), str(path), _file_fingerprint(path, "texts"))


def text_lines(f):
    return (line.strip() for line in f if line.strip())
