"""Reading one file into a `datasets.Dataset`: GLUE's TSV layout and your own CSV, TSV,
JSON-lines (each also gzip-compressed: .csv.gz) and Parquet files, with the rows, columns and
labels checked as they are read. A malformed row, a label the task does not know, a file that
is not UTF-8: each is one line naming the file, the line and the fix. Rows come one at a time
(rows_of), so a reader of a large file (glue-run predict) holds only what it is working on.

`datasets` is imported where it is used: the checks made before a run starts answer in a
fraction of a second, without loading the libraries.
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import json
import math
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .errors import GlueRunnerError
from .files import file_digest
from .tasks import TaskSpec

if TYPE_CHECKING:
    import datasets

csv.field_size_limit(sys.maxsize)  # a single GLUE field can exceed csv's 128 KiB default

def column_names(path: Path, encoding: str = "utf-8") -> list[str]:
    """The column names of one of your files: a CSV/TSV's first row, a JSON-lines file's first object's keys,
    a Parquet file's schema."""
    kind = file_kind(path)
    if kind == ".parquet":
        return _parquet_file(path).schema_arrow.names
    with text_file(path, encoding, newline="") as f:
        if kind in (".json", ".jsonl"):
            first = next((line for line in f if line.strip()), "{}")
            if first.lstrip().startswith("["):
                raise _json_array(path)
            try:
                return list(json.loads(first))
            except (ValueError, TypeError):
                raise GlueRunnerError(f"{path}:1: not a JSON object; one object per line") from None
        return next(csv.reader(f, delimiter="\t" if kind == ".tsv" else ","), [])


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
                ".txt": "; Excel's \"Unicode text\" is tab separated: rename it to .tsv"}
TEXT_KINDS = (".csv", ".tsv", ".json", ".jsonl")  # read as text, so also gzip-compressed (.csv.gz)
KINDS = (*TEXT_KINDS, ".parquet")


def file_kind(path: Path) -> str:
    """A data file's format, by its name: one of KINDS; a text format may be gzip-compressed (.csv.gz is .csv)."""
    path = Path(path)
    inner = Path(path.stem).suffix if path.suffix == ".gz" else None
    if inner in TEXT_KINDS:
        return inner
    if path.suffix in KINDS:
        return path.suffix
    kind = f"{inner}.gz" if inner else path.suffix
    raise GlueRunnerError(f"{path}: unsupported file type '{kind}'; use .csv, .tsv, .json, .jsonl or .parquet (the "
                          "first four may be gzip-compressed: .csv.gz)" + (
                              "; Parquet compresses itself: give the .parquet file as it is" if inner == ".parquet"
                              else EXPORT_HINTS.get(path.suffix.lower(), "")))


def file_stem(path: Path) -> str:
    """A data file's name without its format's suffix: train.csv.gz is train."""
    compressed = 3 if Path(path).suffix == ".gz" else 0
    return Path(path).name[:len(Path(path).name) - compressed - len(file_kind(path))]


def read_rows(path: Path, task: TaskSpec, split: str, columns: dict, quoting: int,
              encoding: str = "utf-8") -> tuple[list, int]:
    """(line number, {our column: the file's value}) per row, and how many rows were short of columns."""
    rows, skipped = [], 0
    for line_num, row in rows_of(path, task, split, columns, quoting, encoding):
        if row is None:
            skipped += 1
        else:
            rows.append((line_num, row))
    return rows, skipped


def rows_of(path: Path, task: TaskSpec, split: str, columns: dict, quoting: int,
            encoding: str = "utf-8") -> Iterator[tuple[int, dict | None]]:
    """(line number, {our column: the file's value}) per row as it is read, None for a row short of
    columns (the caller counts and skips it); a Parquet file's "line" is its row's number."""
    kind = file_kind(path)
    if kind in (".json", ".jsonl"):
        return _jsonl_rows(path, columns, encoding)
    if kind == ".parquet":
        return _parquet_rows(path, columns)
    return _table_rows(path, task, split, columns, delimiter="," if kind == ".csv" else "\t", quoting=quoting,
                       header=all(isinstance(c, str) for c in columns.values()), encoding=encoding)


# More lines than this in one quoted field is an unclosed quote, not a long text with line breaks
QUOTED_LINES = 100


def _table_rows(path: Path, task: TaskSpec, split: str, columns: dict, *, delimiter, quoting,
                header, encoding: str) -> Iterator[tuple[int, dict | None]]:
    """Read a delimited file; `columns` maps our column to a header name or, without a header, an index."""
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
                yield reader.line_num, {ours: row[i] for ours, i in positions.items()} if len(row) >= width else None
    except csv.Error as e:
        raise GlueRunnerError(f"{path}:{reader.line_num + 1}: unreadable as "
                              f"{'TSV' if delimiter == chr(9) else 'CSV'} ({e})") from None


def check_header(path: Path, header: list[str], wanted: list) -> None:
    """A header whose columns are separated by another character than the file's type says (a .tsv of commas,
    LibreOffice's semicolons), or that names a column it is asked for twice, is one clear error."""
    separators, kind = {",": "commas", ";": "semicolons", "\t": "tabs"}, file_kind(path)
    if kind in TEXT_KINDS and kind not in (".json", ".jsonl") and len(header) == 1 and \
            not all(c in header for c in wanted):
        found = next((sep for sep in separators if sep in header[0]), None)
        if found:
            fix = {",": "rename it to .csv", "\t": "rename it to .tsv"}.get(found, "save it again with commas as the "
                                                                               "separator, or as tab-separated text (.tsv)")
            raise GlueRunnerError(f"{path}: its columns are separated by {separators[found]} "
                                  f"({shown(header[0].split(found))}), not by {'tabs' if kind == '.tsv' else 'commas'} "
                                  f"as its name says; {fix}")
    twice = sorted({c for c in wanted if isinstance(c, str) and header.count(c) > 1})
    if twice:
        raise GlueRunnerError(f"{path}:1: the header names column {shown(twice)} more than once; rename them so that "
                              "each column has a name of its own")


def _json_array(path: Path) -> GlueRunnerError:
    return GlueRunnerError(f"{path}: a JSON array; glue-run reads JSON lines, one object per line (pandas: "
                           "df.to_json(path, orient='records', lines=True))")


def _jsonl_rows(path: Path, columns: dict, encoding: str) -> Iterator[tuple[int, dict]]:
    first = True
    with text_file(path, encoding) as f:
        for line_num, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if first and line.lstrip().startswith("["):
                raise _json_array(path)
            first = False
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
            yield line_num, {ours: record[theirs] for ours, theirs in columns.items()}


PARQUET_BATCH = 4096  # rows read from a Parquet file at a time


def _parquet_file(path: Path):
    import pyarrow
    import pyarrow.parquet

    try:
        return pyarrow.parquet.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as e:  # not Parquet, cut short, unreadable
        raise GlueRunnerError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]}); write it again "
                              "(pandas: df.to_parquet(path))") from None


def _parquet_rows(path: Path, columns: dict) -> Iterator[tuple[int, dict]]:
    """A Parquet file's rows, read in batches, with the column checks a CSV's header gets."""
    parquet = _parquet_file(path)
    names = parquet.schema_arrow.names
    missing = [c for c in columns.values() if c not in names]
    if missing:
        raise GlueRunnerError(f"{path}: missing column(s) {shown(missing)}; the file has {shown(names)}. Rename "
                              "the columns, or for your own files pass --text-columns/--label-column")
    wanted = list(dict.fromkeys(columns.values()))
    row_num = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, columns=wanted):
        values = batch.to_pydict()
        for i in range(batch.num_rows):
            row_num += 1
            yield row_num, {ours: values[theirs][i] for ours, theirs in columns.items()}


@contextmanager
def text_file(path: Path, encoding: str = "utf-8", **kwargs):
    """A data file opened as text in `encoding` (--encoding); one that starts with a UTF-16 byte-order
    mark (Excel's "Unicode text") as UTF-16 whatever it says. Failing to decode or read it is one
    clear error."""
    opener = gzip.open if Path(path).suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            utf16 = f.read(2) in UTF16_MARKS
        # utf-8-sig: MRPC's files start with a byte-order mark that would otherwise stick to the first name
        with opener(path, "rt", encoding="utf-16" if utf16 else "utf-8-sig" if is_utf8(encoding) else encoding,
                    **kwargs) as f:
            yield f
    except UnicodeError:
        raise _not_utf8(path) if is_utf8(encoding) else GlueRunnerError(
            f"{path}: not {encoding} text; pass the --encoding it was saved in, or re-save it as UTF-8") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # not gzip, cut short, damaged
        raise GlueRunnerError(f"{path}: not a complete gzip file ({e}); compress or copy it again") from None
    except OSError as e:  # a folder, no permission, ...
        raise GlueRunnerError(f"{path}: cannot be read ({e.strerror})") from None


UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def is_utf8(encoding: str) -> bool:
    import codecs

    return codecs.lookup(encoding).name == "utf-8"


def _not_utf8(path: Path) -> GlueRunnerError:
    # The decoder's error position is within its read buffer, not the file: find the place again.
    raw = gzip.decompress(path.read_bytes()) if Path(path).suffix == ".gz" else path.read_bytes()
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


def to_dataset(rows: list, path: Path, task: TaskSpec, split: str, skipped: int, reading: tuple,
               fingerprint: str | None = None) -> RawSplit:
    """Checked rows as a split; `fingerprint`: of where they came from, if not a file's (a dataset's split)."""
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
    return RawSplit(dataset, str(path), fingerprint or _file_fingerprint(path, f"{split}|{reading}"), skipped,
                    empty=empty)


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


def text_of(value, field: str, path: Path, line_num: int) -> str | None:
    """A row's text, checked as training checks it, or None where it is empty (blank, or null in JSON or Parquet)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _parse_text(value, field, path, line_num)


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
