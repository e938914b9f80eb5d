"""A result is what its inputs made: a run's identity holds its data files, its model's files and its
processes by content, so an edited file, other weights in the same folder or another world size make a
new run (beside the old one, said in one line), and a checkpoint made from other inputs is not resumed."""

import json
import os
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from fixtures import reviews_csv
from test_checkpoint import crash_after  # the run stops (Ctrl-C, a full disk, a preemption) after a checkpoint
from glue_runner import files, fingerprints, results

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]


def write_reviews(folder: Path) -> tuple[Path, Path]:
    """An own CSV task: train.csv and dev.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(reviews_csv())
    (folder / "dev.csv").write_text(reviews_csv(12))
    return folder / "train.csv", folder / "dev.csv"


def own(train: Path, dev: Path) -> list[str]:
    return ["--train-file", str(train), "--validation-file", str(dev), *FAST]


def finished() -> list[Path]:
    return sorted(Path("results/runs").rglob("metrics.json"))


def err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("edited", ["train", "dev"])
def test_an_edited_data_file_is_a_new_run_beside_the_old(run_cli, tmp_path, capsys, edited):
    train, dev = write_reviews(tmp_path / "reviews")
    assert run_cli(*own(train, dev), data=False) == 0
    [first] = finished()
    before = first.read_text()
    capsys.readouterr()
    path = train if edited == "train" else dev
    path.write_text(path.read_text().replace(",neg\n", ",pos\n", 2))  # two labels fixed by hand
    assert run_cli(*own(train, dev), data=False) == 0
    said = err(capsys)
    assert "already done" not in said
    assert f"{first.parent} holds this run made from other inputs ({path.resolve()} changed): a new run" in said
    assert len(finished()) == 2 and first.read_text() == before  # the earlier result is kept as it was
    newer = json.loads(next(p for p in finished() if p != first).read_text())
    assert newer["identity"]["inputs"]["files"][str(path.resolve())] == files.file_digest(path)
    capsys.readouterr()
    assert run_cli(*own(train, dev), data=False) == 0  # the same inputs again: the new run is done
    assert "1 of 1 run(s) already done" in err(capsys)


def test_a_glue_folders_edited_file_is_a_new_run(run_cli, glue_dir, tmp_path, capsys):
    data = tmp_path / "glue"
    shutil.copytree(glue_dir, data)
    assert run_cli("--task", "rte", *FAST, "--data-dir", str(data), data=False) == 0
    dev = data / "RTE" / "dev.tsv"
    dev.write_text(dev.read_text().replace("not_entailment", "entailment", 1))
    capsys.readouterr()
    assert run_cli("--task", "rte", *FAST, "--data-dir", str(data), data=False) == 0
    assert f"({dev.resolve()} changed): a new run" in err(capsys) and len(finished()) == 2


def test_other_weights_in_the_same_model_folder_are_a_new_run(run_cli, tiny_bert, tmp_path, capsys):
    model = tmp_path / "exported"
    shutil.copytree(tiny_bert, model)
    assert run_cli("--task", "rte", *FAST, "--model", str(model), model=False) == 0
    weights = load_file(model / "model.safetensors")
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}, model / "model.safetensors")
    capsys.readouterr()
    assert run_cli("--task", "rte", *FAST, "--model", str(model), model=False) == 0
    said = err(capsys)
    assert "already done" not in said and "(the model folder's model.safetensors): a new run" in said
    assert len(finished()) == 2


def test_a_checkpoint_made_from_other_data_is_not_resumed(run_cli, tmp_path, capsys, monkeypatch):
    train, dev = write_reviews(tmp_path / "reviews")
    with crash_after(monkeypatch, 1):
        run_cli(*own(train, dev), "--save-steps", "1", data=False)
    [checkpoint] = Path("results/runs").rglob("checkpoint-*")
    train.write_text(train.read_text().replace(",neg\n", ",pos\n", 2))
    capsys.readouterr()
    assert run_cli(*own(train, dev), data=False) == 0
    said = err(capsys)
    assert f"the checkpoints in {checkpoint.parent} were made from other inputs ({train.resolve()} changed)" in said
    assert "the run starts over" in said and "resuming" not in said
    assert finished() == [checkpoint.parent / "metrics.json"]  # its folder, taken over: the stale checkpoint is gone
    with crash_after(monkeypatch, 1):  # with the same data it resumes
        run_cli(*own(train, dev), "--save-steps", "1", "--seed", "7", data=False)
    capsys.readouterr()
    assert run_cli(*own(train, dev), "--seed", "7", data=False) == 0
    assert "resuming from" in err(capsys)


def test_resume_refuses_a_checkpoint_made_from_other_data(run_cli, tmp_path, capsys, monkeypatch):
    train, dev = write_reviews(tmp_path / "reviews")
    with crash_after(monkeypatch, 1):
        run_cli(*own(train, dev), "--save-steps", "1", data=False)
    dev.write_text(dev.read_text().replace(",neg\n", ",pos\n", 1))
    capsys.readouterr()
    assert run_cli(*own(train, dev), "--resume", data=False) == 2
    assert "--resume: the checkpoints in" in err(capsys) and list(Path("results/runs").rglob("checkpoint-*"))


def test_metrics_json_records_the_fingerprints(run_cli, tiny_bert, tmp_path):
    train, dev = write_reviews(tmp_path / "reviews")
    assert run_cli(*own(train, dev), data=False) == 0
    inputs = json.loads(finished()[0].read_text())["identity"]["inputs"]
    assert inputs["files"] == {str(train.resolve()): files.file_digest(train), str(dev.resolve()): files.file_digest(dev)}
    assert inputs["model"]["model.safetensors"] == files.file_digest(tiny_bert / "model.safetensors")
    assert inputs["processes"] == 1 and "README.md" not in inputs["model"]


def test_a_run_recorded_before_inputs_were_fingerprinted_still_counts(run_cli, tmp_path, capsys):
    train, dev = write_reviews(tmp_path / "reviews")
    assert run_cli(*own(train, dev), data=False) == 0
    path = finished()[0]
    record = json.loads(path.read_text())
    del record["identity"]["inputs"]
    path.write_text(json.dumps(record))
    capsys.readouterr()
    assert run_cli(*own(train, dev), data=False) == 0
    assert "1 of 1 run(s) already done" in err(capsys)


def test_what_changed_is_named():
    before = {"files": {"/d/train.csv": "a", "/d/dev.csv": "b"}, "model": {"model.safetensors": "w", "vocab.txt": "v"},
              "processes": 1}
    assert fingerprints.changes(before, before) == [] and fingerprints.changes(None, before) == []
    after = {"files": {"/d/train.csv": "A", "/d/dev.csv": "b"}, "model": {"model.safetensors": "W", "vocab.txt": "v"},
             "processes": 2}
    assert fingerprints.changes(before, after) == [
        "/d/train.csv changed", "the model folder's model.safetensors",
        "the processes (1 there, 2 now: each step takes --batch-size examples per process)"]
    hub = {"model": {"revision": "abc"}, "hub_data": "x"}
    assert fingerprints.changes(hub, {"model": {"revision": "def"}, "hub_data": "y"}) == [
        "the model's commit (abc there, def now)", "the Hub dataset's commit (x there, y now)"]
    assert fingerprints.changes(hub, {"model": None, "hub_data": None}) == []  # cannot tell: no change claimed


def test_a_large_files_digest_is_computed_once_and_kept_across_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "LARGE_FILE", 10)
    monkeypatch.setattr(files, "_memo", {})
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x" * 100)
    digest = files.file_digest(weights)
    stored = json.loads(files.digests_file().read_text())
    assert stored[str(weights.resolve())][3] == digest
    monkeypatch.setattr(files, "_memo", {})  # a new process: the stored digest is used, the file not read
    monkeypatch.setattr(files.hashlib, "sha256", lambda: pytest.fail("read again"))
    assert files.file_digest(weights) == digest
    monkeypatch.undo()
    weights.write_bytes(b"y" * 100)
    os.utime(weights, ns=(1, 10**18))  # a new modification time: read again
    assert files.file_digest(weights) != digest


def test_a_hub_models_commit_comes_from_the_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = tmp_path / "models--org--encoder" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("0123abcd\n")
    fingerprints.hub_revision.cache_clear()
    assert fingerprints.model("org/encoder", tmp_path) == {"revision": "0123abcd"}
    assert fingerprints.model("org/absent", tmp_path) is None
