"""Files written whole or not at all, and the small text formats they hold.

Every file glue-run writes goes to a temporary name beside it, is synced, and is renamed
into place: a crash, Ctrl-C or a full disk never leaves half a file. A disk that fails
mid-write is said in one line: what is still there and what to do.
"""

import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import GlueRunnerError


def safe_name(name: str) -> str:
    """A folder name that stays inside its parent: no separators, no '..', no odd characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip().replace("/", "__")).strip("._")
    return cleaned or "unnamed"


UMASK = os.umask(0o022)
os.umask(UMASK)  # reading the umask means setting it: put it straight back


def stage(path: Path, text: str | bytes) -> Path:
    """text (or bytes: a picture) in a synced temporary file beside path, for the caller to rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # backslashreplace: a path or model name that is not UTF-8 (bytes a shell passed) is written escaped
        with (os.fdopen(fd, "wb") if isinstance(text, bytes) else
              os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="")) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600 files; results are as readable as any other file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_atomic(path: Path, text: str | bytes) -> None:
    os.replace(stage(path, text), path)


def png(figure) -> bytes:
    """A matplotlib figure as PNG bytes, for write_atomic or a run's files; the figure is closed."""
    import matplotlib.pyplot as plt

    picture = io.BytesIO()
    figure.savefig(picture, format="png", dpi=120)
    plt.close(figure)
    return picture.getvalue()


def fsync(path: Path) -> None:
    if Path(path).is_dir() and os.name != "posix":
        return  # Windows cannot open a folder to sync it; NTFS journals the rename itself
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def disk_errors(what: str, state: str, action: str, where: Path | None = None):
    """An error while writing (a full disk, a folder removed mid-run) as one clear line that says
    what is still on disk and what to do. `where`: a folder on the disk being written, whose free
    space tells a full disk from other failures when the writer does not say which it was."""
    try:
        yield
    except OSError as e:
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        reason = (e.strerror or str(e)) + (f" ({e.filename})" if e.filename else "")
        raise GlueRunnerError(_write_failed(what, reason, state, action, full)) from None
    except Exception as e:
        # safetensors and torch.save report a failed write as their own errors, not OSError
        if type(e).__name__ != "SafetensorError" and not (isinstance(e, RuntimeError) and "inline_container" in str(e)):
            raise
        # torch.save's "unexpected pos" is a short write: seen only on a full disk (its space is free
        # again by now, the half-written folder removed)
        full = any(sign in str(e) for sign in ("os error 28", "unexpected pos")) or \
            (where is not None and _free_bytes(where) < 2**20)
        reason = "No space left on device" if full else str(e).splitlines()[0]
        raise GlueRunnerError(_write_failed(what, reason, state, action, full)) from None


def _write_failed(what: str, reason: str, state: str, action: str, full: bool) -> str:
    hint = "Free some space, then " + action if full else action[0].upper() + action[1:]
    return f"could not write {what}: {reason}. {state}. {hint}."


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def delimited_text(header: list[str], rows: list, delimiter: str = "\t") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) if c != "" else "–" for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def file_digest(path: Path) -> str:
    """The file's content as 16 hex digits of its SHA-256. Computed once per content: a digest is kept by the
    file's path, size, modification time and inode, in memory and, for a large file (a model's weights take
    a second or more to read), in DIGESTS across runs."""
    path = Path(path).resolve()
    info = path.stat()
    stamp = [info.st_size, info.st_mtime_ns, info.st_ino]
    known = _memo.get(str(path))
    if known and known[:3] == stamp:
        return known[3]
    large = info.st_size >= LARGE_FILE
    stored = _stored_digests() if large else {}
    known = stored.get(str(path))
    if not (isinstance(known, list) and known[:3] == stamp):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        known = [*stamp, digest.hexdigest()[:16]]
        if large:
            _store_digest(str(path), known)
    _memo[str(path)] = known
    return known[3]


LARGE_FILE = 8 * 2**20
_memo: dict[str, list] = {}


def digests_file() -> Path:
    """Where large files' digests are kept: beside the tokenized data, in datasets' cache folder (read from the
    environment as datasets reads it, without importing it)."""
    home = Path(os.environ.get("HF_HOME") or Path("~/.cache/huggingface").expanduser())
    return Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets") / "glue_runner" / "digests.json"


def _stored_digests() -> dict:
    try:
        stored = json.loads(digests_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _store_digest(path: str, known: list) -> None:
    # A cache, written whole: another process's digest written at the same moment may be lost (it is read
    # again next time), and a folder that cannot be written only costs the reading
    try:
        write_atomic(digests_file(), json.dumps(_stored_digests() | {path: known}, indent=0))
    except OSError:
        pass


def not_a_file(path: Path) -> str:
    """Why a path that should name a file does not, for a message."""
    path = Path(path).expanduser()
    return "is a folder, not a file" if path.is_dir() else "is not a file" if path.exists() else "does not exist"
