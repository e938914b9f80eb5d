"""The GLUE smoke subsets shipped in glue_runner/smoke_data (written by make_smoke_data.py)."""

from pathlib import Path

import pytest
from make_smoke_data import HEADERS, build, label

import glue_runner
from glue_runner import data, tasks
from glue_runner.config import RunConfig

SMOKE = Path(glue_runner.__file__).parent / "smoke_data"
# Data rows per file: 256, or the whole file where the original has fewer.
ROWS = {path: 256 for path in HEADERS} | {"WNLI/dev.tsv": 71, "WNLI/test.tsv": 146}
BUNDLED = ["cola", "sst2", "mrpc", "stsb", "qnli", "rte", "wnli", "ax"]
LABELED = [p for p in HEADERS if p.endswith(("/train.tsv", "/dev.tsv"))]


def rows(path: str) -> list[bytes]:
    with open(SMOKE / path, "rb") as f:
        lines = f.readlines()
    return lines[1:] if HEADERS[path] is not None else lines


def test_the_folder_holds_the_bundled_files_and_nothing_else():
    found = {p.relative_to(SMOKE).as_posix() for p in SMOKE.rglob("*") if p.is_file()}
    assert found == set(HEADERS) | {"README.md"}


def test_mnli_and_qqp_are_the_glue_tasks_left_to_the_hub():
    assert {t.name for t in tasks.glue_tasks()} - set(BUNDLED) == {"mnli", "qqp"}


@pytest.mark.parametrize("path", sorted(HEADERS))
def test_each_file_keeps_its_header_and_has_its_rows(path):
    first = (SMOKE / path).read_bytes().split(b"\n", 1)[0] + b"\n"
    if HEADERS[path] is None:  # CoLA: no header, the first line is already a labeled row
        assert first.split(b"\t")[1] in (b"0", b"1")
    else:
        assert first == HEADERS[path]
    assert len(rows(path)) == ROWS[path]


@pytest.mark.parametrize("path", LABELED)
def test_train_and_dev_have_more_than_one_label(path):
    assert len({label(path.split("/")[0], row) for row in rows(path)}) > 1


def test_qnli_train_and_dev_are_disjoint_rows_of_its_dev_file():
    def indices(path):
        return {row.split(b"\t")[0] for row in rows(path)}

    assert not indices("QNLI/train.tsv") & indices("QNLI/dev.tsv")


def test_regenerating_from_the_glue_files_gives_the_same_bytes(shared_glue, tmp_path):
    build(shared_glue, tmp_path)
    for path in HEADERS:
        assert (tmp_path / path).read_bytes() == (SMOKE / path).read_bytes(), path


@pytest.mark.parametrize("task", BUNDLED)
def test_the_folder_works_as_a_data_dir(task):
    spec = tasks.get_task(task)
    splits = data.load_splits(spec, RunConfig(task=task, model="x", data_dir=SMOKE), log=lambda *a: None)
    assert ({"test"} if task == "ax" else {"train", "validation"}) <= set(splits)
    for name, split in splits.items():
        assert split.skipped == 0
        assert len(split.dataset) == ROWS[f"{spec.glue_dir}/{spec.splits[name].file}"]
