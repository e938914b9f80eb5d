"""What the hostile-input census (tests/hostile_input_census.py) found: each a traceback or a lost
file before its fix, pinned here so every run checks it. Run with the tiny model and the fixture
GLUE folder (tests/conftest.py)."""

import pytest

import transformers

from glue_runner import run

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--max-train-samples", "16"]


def err_of(capsys) -> str:
    return capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def glue_run(tmp_path, tiny_bert, glue_dir, monkeypatch):
    """glue-run in-process in a fresh folder; the tiny model, fixture data and cache come first, so
    the test's own flags win (the last of a flag given twice counts)."""
    from glue_runner.cli import main

    monkeypatch.chdir(tmp_path)
    return lambda *args: main(["--model", str(tiny_bert), "--data-dir", str(glue_dir), "--cache-dir",
                               str(tmp_path / "cache"), *args])


@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained",
                        lambda *a, **k: pytest.fail("the model's weights were loaded"))


# ---- paths the machine cannot look up -----------------------------------------
# Found by the flags group: RuntimeError from Path.expanduser and OSError (File name too long) from
# the first Path.exists(), as tracebacks, for every path flag and --model.

@pytest.mark.parametrize("flag", ["--model", "--data-dir", "--output-dir", "--results-dir", "--cache-dir"])
def test_a_home_folder_of_a_user_that_does_not_exist_is_one_line(glue_run, capsys, no_model, flag):
    assert glue_run("--task", "rte", flag, "~nosuchuser/x") == 2
    line = one_error_line(err_of(capsys))
    assert f"{flag} ~nosuchuser/x: ~nosuchuser is not a home folder on this machine; give the path in full" in line


def test_own_files_under_a_home_folder_that_does_not_exist_are_one_line(glue_run, tmp_path, capsys, no_model):
    own = tmp_path / "own.csv"
    own.write_text("sentence,label\ngood film,1\nbad film,0\n")
    assert glue_run("--task", "sst2", "--train-file", str(own), "--validation-file", str(own), "--do-predict",
                   "--test-file", "~nosuchuser/test.csv") == 2
    assert "--test-file ~nosuchuser/test.csv: ~nosuchuser is not a home folder" in one_error_line(err_of(capsys))


@pytest.mark.parametrize("flag, value", [("--output-dir", "x" * 300), ("--results-dir", "a/" + "y" * 256),
                                         ("--model", "x" * 300), ("--data-dir", "x" * 300),
                                         ("--model-name", "m" * 300)])
def test_a_name_longer_than_a_file_name_can_be_is_one_line(glue_run, capsys, no_model, flag, value):
    assert glue_run("--task", "rte", flag, value) == 2
    line = one_error_line(err_of(capsys))
    assert "at most 255" in line and flag in line


# ---- folders glue-run cannot write into ---------------------------------------
# Found by the folders group and the flags group's real runs: a dangling link as --output-dir or
# --results-dir (a disk that is not mounted) failed in run_lock's mkdir with FileExistsError, and a
# --cache-dir that is a file, a dangling link or not writable failed after the model had loaded.

@pytest.mark.parametrize("flag, link", [("--results-dir", "results"), ("--output-dir", "run")])
def test_a_link_to_a_folder_that_is_not_there_is_one_line(glue_run, tmp_path, capsys, no_model, flag, link):
    (tmp_path / link).symlink_to(tmp_path / "not-mounted" / "disk")
    assert glue_run("--task", "rte", flag, link) == 2
    line = one_error_line(err_of(capsys))
    assert f"{link} is a link to {tmp_path}/not-mounted/disk, which does not exist (a disk that is not mounted?)" in line
    assert not (tmp_path / "not-mounted").exists()  # nothing made at the link's target
    assert (tmp_path / link).is_symlink()


def test_a_results_folder_below_a_dangling_link_is_one_line(glue_run, tmp_path, capsys, no_model):
    (tmp_path / "big").symlink_to(tmp_path / "not-mounted")
    assert glue_run("--task", "rte", "--results-dir", "big/results") == 2
    assert "big is a link to" in one_error_line(err_of(capsys))


@pytest.mark.parametrize("kind", ["file", "dangling link", "not writable"])
def test_a_cache_dir_that_cannot_take_files_is_said_before_the_model_loads(glue_run, tmp_path, capsys, no_model,
                                                                          kind):
    import os
    from pathlib import Path

    if kind == "file":
        (tmp_path / "cache-file").write_text("not a folder")
        cache, message = "cache-file", "cache-file is a file, not a folder; give the run a folder (--cache-dir)"
    elif kind == "dangling link":
        (tmp_path / "cache-link").symlink_to(tmp_path / "gone")
        cache, message = "cache-link", "cache-link is a link to"
    else:
        if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and os.geteuid() != 0:
            pytest.skip("needs Linux's /sys, which refuses new files even to root")
        cache, message = "/sys/glue-run-cache", "/sys/glue-run-cache cannot be written (/sys:"
    assert glue_run("--task", "rte", *FAST, "--cache-dir", cache) == 2
    line = one_error_line(err_of(capsys))
    assert message in line and "--cache-dir" in line
    assert not (tmp_path / "results").exists()


# ---- names that are not UTF-8 -------------------------------------------------
# Found by the folders group: bytes a shell passes as they are (os.fsdecode: lone surrogates) in
# --output-dir failed with UnicodeEncodeError in run_lock (the command in .glue-run.owner), in a
# model folder's name with SafetensorError inside transformers, and in --model-name when the
# tables and the model card were written.

NOT_UTF8 = b"caf\xe9".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("flag", ["--output-dir", "--results-dir", "--cache-dir", "--model"])
def test_a_path_that_is_not_utf8_is_one_line(glue_run, tmp_path, capsys, no_model, flag):
    (tmp_path / NOT_UTF8).mkdir()
    assert glue_run("--task", "rte", flag, NOT_UTF8) == 2
    line = one_error_line(err_of(capsys))
    assert f"{flag} caf\\udce9: the name is not UTF-8 text" in line


def test_a_model_name_that_is_not_utf8_is_written_escaped(glue_run, tmp_path, monkeypatch):
    import csv
    import sys

    import io

    monkeypatch.setattr(sys, "argv", ["glue-run", "--model-name", NOT_UTF8])  # as the shell passed it
    # Python's own stderr writes such names escaped; pytest's capture would refuse them
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace"))
    assert glue_run("--task", "rte", *FAST, "--model-name", NOT_UTF8, "--save-model") == 0
    with open(tmp_path / "results" / "runs.csv", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["model"] == "caf\\udce9" and row["run"] == "runs/caf/rte-seed42"
    card = (tmp_path / "results/runs/caf/rte-seed42/model/README.md").read_text(encoding="utf-8")
    assert "caf\\udce9-finetuned-rte" in card


# ---- a message is one line ---------------------------------------------------
# Found by the flags group: a value holding a newline (--task $'rte\nwnli') was quoted in the
# message as it is, so "error:" took two lines.

@pytest.mark.parametrize("flags, shown", [(["--task", "rte\nwnli"], "unknown task 'rte\\nwnli'"),
                                          (["--task", "rte", "--seeds", "1\r2"], "--seeds '1\\r2' is not a comma list"),
                                          (["--task", "rte\u202e"], "unknown task 'rte\\u202e'")])
def test_a_value_with_a_newline_is_quoted_escaped_on_one_line(glue_run, capsys, flags, shown):
    assert glue_run(*flags) == 2
    err = err_of(capsys)
    assert err.count("\n") == 1 and "\r" not in err and shown in one_error_line(err)


# ---- glue-runs that end at the same moment --------------------------------------
# Found by the concurrent group ("sweep again": the same finished sweep started by several
# processes at once): each wrote leaderboard.png through the same temporary name, so one renamed
# the other's file away and crashed with FileNotFoundError.

def test_two_leaderboards_written_at_the_same_moment_both_finish(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from glue_runner import leaderboard, results

    results.write_run(tmp_path / "runs" / "m" / "cola-seed1", {"task": "cola", "model_name": "m", "seed": 1,
                      "date": "2026-01-01T00:00:00+00:00", "metrics": {"matthews_correlation": 0.5}}, {})
    board = leaderboard.build(tmp_path)
    real, calls = Figure.savefig, []

    def savefig(self, *args, **kwargs):
        real(self, *args, **kwargs)
        calls.append(args[0])
        if len(calls) == 1:  # another glue-run writes its board between this one's savefig and its rename
            leaderboard.write(board, tmp_path)

    monkeypatch.setattr(Figure, "savefig", savefig)
    leaderboard.write(board, tmp_path)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert (tmp_path / "leaderboard.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(tmp_path.glob(".*tmp*"))


# Found by the concurrent group too: the same finished sweep started by several processes at once
# ended with most of them saying "error: ... is in use by another glue-run" (exit 2), for each one
# held a finished run's folder for a moment to find it done, and the others met that hold.

def test_a_finished_run_is_already_done_while_another_glue_run_holds_its_folder(glue_run, tmp_path, capsys):
    import subprocess
    import sys

    assert glue_run("--task", "rte", *FAST) == 0
    folder = tmp_path / "results/runs/tiny-bert/rte-seed42"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from glue_runner import results\n"
                               f"with results.run_lock({str(folder)!r}):\n print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert glue_run("--task", "rte", *FAST) == 0
        err = " ".join(capsys.readouterr().err.split())
        assert "rte seed 42: already done in results/runs/tiny-bert/rte-seed42" in err and "in use" not in err
        assert glue_run("--task", "rte", *FAST, "--overwrite") == 2  # redoing it would write: that waits its turn
        assert "is in use by another glue-run" in one_error_line(err_of(capsys))
    finally:
        holder.kill()
        holder.wait()


# ---- what a real run of an accepted value did ------------------------------------
# Found by the flags group's real runs (--real-runs 3): --cache-dir . (or '', which is the same
# path) failed in datasets' map with FileNotFoundError, for a cache file in the current folder has
# no folder part to make.

def test_the_current_folder_as_cache_dir(glue_run, tmp_path):
    assert glue_run("--task", "rte", *FAST, "--max-eval-samples", "8", "--cache-dir", ".") == 0
    assert list(tmp_path.glob("rte-train-*.arrow"))


# --gradient-accumulation-steps 10**40 was accepted and failed at the first step (OverflowError in
# torch); an integer of 400 digits failed in check_bounds itself (OverflowError converting it to float).

@pytest.mark.parametrize("flag", ["--gradient-accumulation-steps", "--batch-size", "--max-train-samples", "--seed"])
@pytest.mark.parametrize("digits", [20, 400])
def test_an_integer_beyond_64_bits_is_one_line(glue_run, capsys, no_model, flag, digits):
    assert glue_run("--task", "rte", flag, "9" * digits) == 2
    line = one_error_line(err_of(capsys))
    assert f"{flag} must be at most 9223372036854775807 (a 64-bit integer)" in line and len(line) < 200


def test_the_largest_64_bit_accumulation_still_trains(glue_run):
    assert glue_run("--task", "rte", *FAST, "--max-eval-samples", "8", "--gradient-accumulation-steps",
                    str(2**63 - 1)) == 0


# Found by the flags group: Python 3.11's argparse reads --flag=-- as an empty list without calling
# the flag's type, so --task=-- failed with AttributeError and --model=-- with TypeError.

@pytest.mark.parametrize("flag", ["--task", "--model-name-or-path", "--learning-rate", "--seeds", "--output-dir"])
def test_a_flag_given_two_dashes_as_its_value_is_a_usage_error(glue_run, capsys, no_model, flag):
    args = ["--task", "rte", f"{flag}=--"]
    with pytest.raises(SystemExit) as e:
        glue_run(*args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "expected one argument" in err.splitlines()[-1] and "Traceback" not in err
