"""Atomic file writes: a reader never sees a half-written file, and a killed writer loses nothing
that was on disk before."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path`` atomically.

    The temporary file lives in the same directory (same file system), so ``os.replace`` is atomic.
    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def write_csv_atomic(frame: Any, path: str | os.PathLike[str]) -> None:
    """Write the DataFrame ``frame`` as CSV (no index) to ``path`` atomically. A ``.gz`` path is
    gzipped with a fixed header (no time stamp, no file name): the same table gives the same bytes,
    so a table collected again unchanged leaves git clean."""
    import gzip
    with atomic_path(path) as tmp:
        if Path(path).name.endswith(".gz"):
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                gz.write(frame.to_csv(index=False).encode())
        else:
            frame.to_csv(tmp, index=False)


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a path given relative to the project root (``data/munich.nc``) from any working
    directory (notebooks run in ``notebooks/``). Absolute paths and paths that exist as given are
    returned unchanged."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return PROJECT_ROOT / p
