"""Write glue_runner/smoke_data/: small GLUE subsets shipped inside the package, so that
`glue-run --smoke` runs offline with no --data-dir.

    python tests/make_smoke_data.py [GLUE_DATA] [--out DIR]

GLUE_DATA is a folder in the original GLUE TSV layout (download_glue_data.py's), by default
../shared/glue_data next to the repository; DIR is glue_runner/smoke_data by default.

The rule (glue_runner/smoke_data/README.md states it too):
- every train and dev file: 256 rows drawn with random.Random(0), stratified by label (STS-B:
  by score rounded to a whole number) so that each label keeps its share, kept in the file's
  own order; a file of 256 rows or fewer is copied whole;
- every test file and AX (diagnostic/diagnostic.tsv): its first 256 rows;
- QNLI has no train file in GLUE_DATA: its smoke train rows are 256 rows of its dev file, and its
  smoke dev rows are 256 other rows of that same dev file, drawn from the rows left over.
Lines are copied as bytes, never re-serialized, so each file keeps its original header (CoLA's
train and dev have none), byte-order mark, quoting and line endings, and reads as a --data-dir.
MNLI and QQP are not bundled: GLUE_DATA does not have them, so --smoke takes them from the Hub.
"""

import argparse
import random
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROWS = 256
SEED = 0

# Every bundled file with the header line it must start with (None: the file has no header). The
# source's header is checked against it, so a differently laid out source fails loudly.
HEADERS = {
    "CoLA/train.tsv": None,
    "CoLA/dev.tsv": None,
    "SST-2/train.tsv": b"sentence\tlabel\n",
    "SST-2/dev.tsv": b"sentence\tlabel\n",
    "SST-2/test.tsv": b"index\tsentence\n",
    "MRPC/train.tsv": b"\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n",
    "MRPC/dev.tsv": b"\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n",
    "MRPC/test.tsv": b"index\t#1 ID\t#2 ID\t#1 String\t#2 String\n",
    "STS-B/train.tsv": b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n",
    "STS-B/dev.tsv": b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n",
    "STS-B/test.tsv": b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n",
    "QNLI/train.tsv": b"index\tquestion\tsentence\tlabel\n",
    "QNLI/dev.tsv": b"index\tquestion\tsentence\tlabel\n",
    "QNLI/test.tsv": b"index\tquestion\tsentence\n",
    "RTE/train.tsv": b"index\tsentence1\tsentence2\tlabel\n",
    "RTE/dev.tsv": b"index\tsentence1\tsentence2\tlabel\n",
    "RTE/test.tsv": b"index\tsentence1\tsentence2\n",
    "WNLI/train.tsv": b"index\tsentence1\tsentence2\tlabel\n",
    "WNLI/dev.tsv": b"index\tsentence1\tsentence2\tlabel\n",
    "WNLI/test.tsv": b"index\tsentence1\tsentence2\n",
    "diagnostic/diagnostic.tsv": b"index\tsentence1\tsentence2\n",
}

# The column each task's train/dev labels are in (0-based), to stratify by.
LABEL_COLUMN = {"CoLA": 1, "SST-2": 1, "MRPC": 0, "STS-B": 9, "QNLI": 3, "RTE": 3, "WNLI": 3}


def label(folder: str, line: bytes):
    value = line.rstrip(b"\n").split(b"\t")[LABEL_COLUMN[folder]]
    return round(float(value)) if folder == "STS-B" else value


def stratified(indices: list[int], labels: list, rng: random.Random) -> list[int]:
    """ROWS of indices, each label's share kept (largest remainder), in file order."""
    groups = defaultdict(list)
    for i in indices:
        groups[labels[i]].append(i)
    names = sorted(groups)
    quota = {k: ROWS * len(groups[k]) // len(indices) for k in names}
    by_remainder = sorted(names, key=lambda k: -(ROWS * len(groups[k]) % len(indices)))
    for k in by_remainder[:ROWS - sum(quota.values())]:
        quota[k] += 1
    return sorted(i for k in names for i in rng.sample(groups[k], quota[k]))


def pick(path: str, rows: list[bytes]) -> list[int]:
    folder, name = path.split("/")
    if name not in ("train.tsv", "dev.tsv") or len(rows) <= ROWS:
        return list(range(min(ROWS, len(rows))))
    rng = random.Random(SEED)
    labels = [label(folder, row) for row in rows]
    chosen = stratified(list(range(len(rows))), labels, rng)
    if folder == "QNLI" and name == "dev.tsv":  # the same draw as train, then dev from the rest
        taken = set(chosen)
        chosen = stratified([i for i in range(len(rows)) if i not in taken], labels, rng)
    return chosen


def source_file(path: str) -> str:
    return "QNLI/dev.tsv" if path == "QNLI/train.tsv" else path


def build(glue_data: Path, out: Path) -> dict[str, int]:
    """Write every bundled file under out; its data rows per file."""
    counts = {}
    for path, header in HEADERS.items():
        src = glue_data / source_file(path)
        with open(src, "rb") as f:
            lines = f.readlines()  # split on b"\n" only: text may hold \r, \x0b or U+2028
        if header is not None and lines[0] != header:
            raise SystemExit(f"{src}: header {lines[0]!r}, expected {header!r}")
        head, rows = ([lines[0]], lines[1:]) if header is not None else ([], lines)
        chosen = [rows[i] for i in pick(path, rows)]
        # A source's unterminated last line would run into the next row if sampled into the middle.
        if any(not line.endswith(b"\n") for line in chosen[:-1]):
            raise SystemExit(f"{src}: a row without a line ending would be followed by another")
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"".join(head + chosen))
        counts[path] = len(chosen)
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("glue_data", nargs="?", type=Path, default=REPO.parent / "shared" / "glue_data")
    parser.add_argument("--out", type=Path, default=REPO / "glue_runner" / "smoke_data")
    args = parser.parse_args(argv)
    for path, n in build(args.glue_data, args.out).items():
        print(f"{n:4d}  {path}")


if __name__ == "__main__":
    main()
