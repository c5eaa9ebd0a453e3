"""File output shared by seqmatch and the workflow scripts: atomic writes, JSON, JSONL, CSV, figures.

Every writer creates the parent directory, writes a temporary file ``.tmp-*`` in the target's
directory and ``os.replace``s it over the target, so a half-written file never appears under the
final name; on any error (a row that cannot be serialised, a full disk, Ctrl-C) the temporary file
is removed and an existing target is left as it was. Temporary files are created with mode
``0o666 & ~umask`` like a plain ``open(path, "w")`` (``tempfile.mkstemp`` would give ``0o600``).

Text is UTF-8 and written as given (no newline translation).

JSON (:func:`to_json`, :func:`write_json`, :func:`write_jsonl`) is standard JSON: NaN and +-inf
become ``null``; numpy scalars and arrays become Python numbers and lists; any other object that
``json`` cannot encode raises ``TypeError`` (nothing is written). Non-ASCII characters are written
as they are (``ensure_ascii=False``). :func:`write_json` indents by 2 and ends with a newline; a
JSONL row is one compact line (``json.dumps`` separators) ending with ``\\n``.

No torch, numpy or matplotlib at import time (numpy only to encode numpy objects, matplotlib never:
:func:`atomic_savefig` is given the figure).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import secrets
from typing import Any, Iterable, Iterator, Sequence

__all__ = [
    "atomic_path", "atomic_write_text", "atomic_write_bytes", "atomic_savefig", "to_json", "write_json",
    "read_jsonl", "write_jsonl", "write_csv",
]

TMP_PREFIX = ".tmp-"


# ----------------------------------------------------------------------------------------------
# atomic replacement


def _create_temp(directory: str, suffix: str) -> str:
    """A new empty file ``directory/.tmp-XXXXXXXXXXXX{suffix}`` (mode 0o666 & ~umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f"{TMP_PREFIX}{secrets.token_hex(6)}{suffix}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary file name in {directory}")  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Context manager: a temporary path to write ``path``'s new contents to.

    The parent directory of ``path`` is created. On a normal exit the temporary file replaces
    ``path`` (``os.replace``); on any exception it is removed and ``path`` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = _create_temp(directory, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (no newline translation)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline="") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_savefig(fig, path: str | os.PathLike, **savefig_kwargs) -> None:
    """``fig.savefig`` to ``path`` atomically; the format is the extension (``png`` without one).

    Defaults ``dpi=150, bbox_inches="tight"``; ``savefig_kwargs`` override them.
    """
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    kwargs = {"dpi": 150, "bbox_inches": "tight", **savefig_kwargs}
    with atomic_path(path, suffix="." + fmt) as tmp:
        fig.savefig(tmp, format=fmt, **kwargs)


# ----------------------------------------------------------------------------------------------
# JSON, JSONL, CSV


def _finite_or_none(x: float):
    return x if math.isfinite(x) else None


def _clean_nan(o):
    """NaN/inf -> None in dicts, lists and tuples (json.dumps would write NaN)."""
    if isinstance(o, float):
        return _finite_or_none(o)
    if isinstance(o, dict):
        return {k: _clean_nan(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_nan(v) for v in o]
    return o


def _json_default(o):
    """numpy scalars and arrays as Python values; anything else is an error."""
    if type(o).__module__ == "numpy":
        import numpy as np

        if isinstance(o, np.bool_):
            return bool(o)
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return _finite_or_none(float(o))
        if isinstance(o, np.ndarray):
            return _clean_nan(o.tolist())
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def to_json(obj: Any, *, indent: int | None = None, sort_keys: bool = False, ensure_ascii: bool = False) -> str:
    """Standard JSON text of ``obj`` (NaN/inf -> null, numpy -> Python; no trailing newline)."""
    return json.dumps(_clean_nan(obj), indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii,
                      allow_nan=False, default=_json_default)


def write_json(path: str | os.PathLike, obj: Any, *, sort_keys: bool = False) -> None:
    """Write ``obj`` as JSON (indent 2, UTF-8, trailing newline) atomically."""
    atomic_write_text(path, to_json(obj, indent=2, sort_keys=sort_keys) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of a JSONL file (blank lines skipped).

    A line that is not JSON raises ``json.JSONDecodeError`` whose message names the file and line.
    """
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise json.JSONDecodeError(f"{os.fspath(path)}, line {lineno}: {e.msg}", e.doc, e.pos) from None
    return rows


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one compact JSON object a line (UTF-8, ``\\n`` after each) atomically; the row count."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        for row in rows:
            f.write(to_json(row) + "\n")
            n += 1
    return n


def write_csv(path: str | os.PathLike, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """Write dict rows as CSV (``csv`` module defaults: ``\\r\\n`` line ends, minimal quoting)
    atomically: a header of ``columns``, then one line a row (keys not in ``columns`` dropped,
    missing ones empty)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(path, buf.getvalue())
