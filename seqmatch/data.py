"""Data for every experiment: arithmetic, text, en->fr translation, and tokenizers (issue 5).

CLI (every option has ``--help``)::

    python -m seqmatch.data arithmetic  --out-dir DIR --task {add_or_sub_in_base,mul,list_prime_factors}
                                        [--source {generator,hub}] [--n-train N] [--n-test N] [--seed S]
                                        [--difficulty D] [--entropy MIN MAX] [--max-base 10]
    python -m seqmatch.data text        --out-dir DIR --source {wiki-sample,hub} [--hub-id ID] ...
    python -m seqmatch.data translation --out-dir DIR --source {gettext,hub} [--hub-id ID --hub-config en-fr]
                                        [--max-tokens 64] [--tokenizer DIR] ...
    python -m seqmatch.data tokenizer   --corpus A.jsonl [B.jsonl ...] --vocab-size N --out-dir DIR
    python -m seqmatch.data text-prompts --data test.jsonl --tokenizer DIR --prompt-tokens K --out FILE

Each data command writes ``DIR/train.jsonl``, ``DIR/test.jsonl`` and ``DIR/meta.json``. ``meta.json``
names the source (and, for offline stand-ins, what it stands in for), the licenses, the sha256 of
every input, the sizes, the seed and the generator settings. It holds no timestamps or absolute
paths, so the same command and seed give byte-identical files.

Rows (JSONL, UTF-8). Every row has ``prompt``, ``completion`` and ``source``; a training trajectory is
``tok(prompt) + tok(completion) + [eos]`` and noise goes only into the completion.

* arithmetic: ``prompt = f"{question} Solution:"``, ``completion = f" {answer}"``, plus ``question``,
  ``answer``, ``base`` (10 unless the question is "In base b, ..."), ``task``.
* text: ``prompt = ""``, ``completion = text`` (a paragraph, or a hub document), plus ``title`` (wiki).
* translation: ``prompt = f"English: {en}\\nFrench:"``, ``completion = " " + fr``, plus ``en``, ``fr``
  and ``license`` (English is the question, French the answer, as in paper App. G.2).

Sources. Paper profile: ``datasets`` hub ids (``deepmind/math_dataset``, ``Skylion007/openwebtext``,
``Helsinki-NLP/opus_books`` en-fr), the model's own tokenizer plus ``<bkspc>`` (:func:`load_tokenizer`).
Offline profile: the ``mathematics_dataset`` generator (the paper's own source), the English
Wikipedia sample inside the ``gensim==4.4.0`` wheel, and French gettext catalogs inside pinned
wheels (:data:`GETTEXT_SOURCES`); wheels are fetched with ``pip download --no-deps`` into
``resources/wheels`` and the members we read are checked against pinned sha256s. Nothing of the
wheels is imported or installed. A tokenizer for the offline profiles is trained here with
``tokenizers`` (byte-level BPE, digits split one by one as Llama does, specials ``<pad> <bos> <eos>
<bkspc>``) and saved as a Hugging Face tokenizer directory.

Defaults follow the paper: arithmetic 5,000 train / 200 test (list_prime_factors 50,000 train) over
mathematics_dataset's full training entropy range (3, 10); translation pairs with both sides under 64
tokens. Small numbers for a CPU model: ``--entropy 2 4`` (add_or_sub_in_base answers ~3 digits; all three
tasks give 5,200 distinct questions at that setting; list_prime_factors cannot at ``1 3``).
Byte-level BPE always holds the 256 byte tokens plus the 4 specials, so ``--vocab-size`` below 260
gives a 260-token, merge-free (character-level) tokenizer; about 300 already holds every merge the
arithmetic corpora have (281 tokens, prompts ~16 tokens instead of ~37).

Hub sources given a local path (a file, or a directory of ``{split}.jsonl|parquet|csv`` files) load it
with ``datasets``' generic builders in the same column layout as the hub dataset; that is how the tests
exercise the hub loaders. With no network (or ``HF_DATASETS_OFFLINE`` and nothing cached) a hub
source fails at once with :class:`HubUnavailableError` naming the dataset.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import html
import importlib
import json
import math
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlparse
from xml.etree import ElementTree

# Same string as seqmatch.actions.BKSPC_TOKEN (tested); not imported from there so that the data CLI
# does not import torch.
BKSPC_TOKEN = "<bkspc>"
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"
PAD_TOKEN = "<pad>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, BKSPC_TOKEN)  # ids 0..3 in tokenizers we train

DEFAULT_CACHE_DIR = "resources"
SOLUTION_MARKER = "Solution:"


class DataSourceError(RuntimeError):
    """A data source could not be read (missing wheel, checksum mismatch, bad local file)."""


class HubUnavailableError(DataSourceError):
    """A ``datasets`` hub source was asked for with no network / offline mode and no cache."""


class ChecksumError(DataSourceError):
    """A file we read does not have the pinned sha256."""


# ----------------------------------------------------------------------------------------------
# small I/O helpers


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def write_json(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_split(out_dir: str | os.PathLike, train: Sequence[dict], test: Sequence[dict], meta: dict) -> dict:
    """Write ``train.jsonl``, ``test.jsonl`` and ``meta.json`` (with sizes and file hashes) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    meta = dict(meta)
    meta["sizes"] = {"train": len(train), "test": len(test)}
    meta["outputs"] = {name: sha256_file(out / name) for name in ("train.jsonl", "test.jsonl")}
    meta["format"] = "seqmatch.data v1: JSONL rows with prompt, completion, source (+ task fields)"
    write_json(out / "meta.json", meta)
    return meta


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


GENSIM_WHEEL = PinnedWheel(
    "gensim", "4.4.0",
    "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    license="LGPL-2.1-only (gensim code; we read only its test data)",
    # The member is data, identical in every gensim 4.4.0 wheel; these flags fetch the same file
    # whatever Python/platform runs the fetch.
    pip_args=("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
              "--platform", "manylinux_2_28_x86_64"),
)
WIKI_MEMBER = WheelMember(
    "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
)
WIKI_LICENSE = "CC BY-SA 3.0 / GFDL (English Wikipedia text, 2016 dump sample shipped in gensim 4.4.0)"


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


PARQUET_REVISION = "refs/convert/parquet"  # the hub's parquet export of script-based datasets
_HUB_REVISIONS: dict[tuple[str, str | None], str | None] = {}  # revision each hub load really used


def load_hub_dataset(hub_id: str, *, config: str | None = None, split: str = "train",
                     revision: str | None = None, streaming: bool | None = None):
    """A ``datasets`` dataset for ``hub_id`` (a hub id, or a local file/directory in its layout).

    Local paths go through the generic ``json``/``parquet``/``csv`` builders (a directory is read as
    ``{split}.jsonl`` etc.). Hub ids fail at once, naming the dataset, when the hub cannot be reached
    (offline setting with no cached copy, or no network). ``streaming`` defaults to True when online
    and to False (read the local cache) under an offline setting. Datasets that still ship a loading
    script (``datasets`` >= 4 refuses those: openwebtext, math_dataset) are read from the hub's parquet
    export, revision ``refs/convert/parquet``, unless a revision is given.
    """
    import datasets

    local = Path(hub_id)
    if local.exists():
        builder, files = _local_data_files(local, split)
        return datasets.load_dataset(builder, data_files={split: files}, split=split)
    reason, is_setting = _hub_offline_reason()
    if reason is not None and not is_setting:
        raise HubUnavailableError(
            f"hub dataset {hub_id!r} (config {config!r}) needs the Hugging Face hub: {reason}. "
            + OFFLINE_HINT)
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
                f"downloading it ({type(e).__name__}: {e}). " + OFFLINE_HINT) from e
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


def _hub_inputs(hub_id: str, config: str | None, revision: str | None) -> list[dict]:
    p = Path(hub_id)
    if p.exists():
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        return [{"name": q.name, "sha256": sha256_file(q)} for q in files]
    revision = revision or _HUB_REVISIONS.get((hub_id, config))
    return [{"name": hub_id, "config": config, "revision": revision or "main (unpinned)"}]


# ----------------------------------------------------------------------------------------------
# arithmetic (paper §6.1, App. G.3, G.4): mathematics_dataset's generator

ARITHMETIC_TASKS = {
    # task: (mathematics_dataset module, its training entropy range)
    "add_or_sub_in_base": ("arithmetic", (3.0, 10.0)),
    "mul": ("arithmetic", (3.0, 10.0)),
    "list_prime_factors": ("numbers", (3.0, 10.0)),
}
MATH_DATASET_VERSION = "1.0.1"
MATH_DATASET_LICENSE = "Apache-2.0 (mathematics_dataset generator, DeepMind)"
MAX_QUESTION_CHARS = 160  # mathematics_dataset.generate_settings: generated questions longer are dropped
MAX_ANSWER_CHARS = 30
_BASE_RE = re.compile(r"^In base (\d+), ")
_MATH_CACHE: dict[str, Any] = {}


def ensure_mathematics_dataset():
    """Import ``mathematics_dataset`` 1.0.1 with the sympy shim of DESIGN §5; return its modules.

    sympy >= 1.13 moved ``base_solution_linear`` out of ``sympy.solvers.diophantine``; the package
    imports it from there. We re-export it from the submodule before importing.
    """
    if "modules" in _MATH_CACHE:
        return _MATH_CACHE["modules"]
    pkg = importlib.import_module("sympy.solvers.diophantine")
    if not hasattr(pkg, "base_solution_linear"):
        sub = importlib.import_module("sympy.solvers.diophantine.diophantine")
        sys.modules["sympy.solvers.diophantine"].base_solution_linear = sub.base_solution_linear
    from mathematics_dataset.modules import arithmetic as md_arithmetic
    from mathematics_dataset.modules import numbers as md_numbers

    _MATH_CACHE["modules"] = {"arithmetic": md_arithmetic, "numbers": md_numbers}
    return _MATH_CACHE["modules"]


def resolve_entropy(task: str, difficulty: float | None = None,
                    entropy: Sequence[float] | None = None) -> tuple[float, float]:
    """The ``(min, max)`` entropy passed to mathematics_dataset's module function.

    ``entropy`` wins if given. Otherwise ``difficulty`` d in [0, 1] takes the first fraction d of the
    module's training range (3, 10): d = 1 (default) is the full training range, the paper's data;
    d = 0 is (3, 3). Entropy is in decimal digits shared between the two operands (each at least 1),
    so ``--entropy 1 3`` gives 1-2 digit operands: a task a small CPU model learns.
    """
    lo, hi = ARITHMETIC_TASKS[task][1]
    if entropy is not None:
        emin, emax = float(entropy[0]), float(entropy[1])
    else:
        d = 1.0 if difficulty is None else float(difficulty)
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {d}")
        emin, emax = lo, lo + d * (hi - lo)
    if not 0 < emin <= emax:
        raise ValueError(f"need 0 < entropy min <= max, got ({emin}, {emax})")
    return emin, emax


def question_base(question: str) -> int:
    m = _BASE_RE.match(question)
    return int(m.group(1)) if m else 10


def arithmetic_row(question: str, answer: str, task: str, source: str) -> dict:
    question, answer = question.strip(), answer.strip()
    return {
        "prompt": f"{question} {SOLUTION_MARKER}",
        "completion": f" {answer}",
        "question": question,
        "answer": answer,
        "base": question_base(question),
        "task": task,
        "source": source,
    }


def _module_function(task: str, emin: float, emax: float) -> Callable[[], Any]:
    mods = ensure_mathematics_dataset()  # the shim must precede any mathematics_dataset import
    from mathematics_dataset.util import composition

    module = mods[ARITHMETIC_TASKS[task][0]]
    args = composition.PreSampleArgs(1, 1, emin, emax)
    if task == "add_or_sub_in_base":
        return lambda: module.add_or_sub_in_base(args)
    if task == "mul":
        return lambda: module.mul(None, args)
    return lambda: module.list_prime_factors(None, args)


def generate_arithmetic(task: str, *, n_train: int, n_test: int, seed: int = 0,
                        difficulty: float | None = None, entropy: Sequence[float] | None = None,
                        max_base: int = 10, max_attempts_factor: int = 10) -> tuple[list[dict], list[dict], dict]:
    """Generate ``(train, test, meta)`` with mathematics_dataset 1.0.1's module functions.

    Problems are drawn from one seeded stream; those with a base > ``max_base`` (add_or_sub_in_base;
    the paper keeps bases <= 10) or longer than the package's own length limits are dropped, and so
    are repeats of a question already drawn. The first ``n_test`` distinct questions form the test
    set, the next ``n_train`` the training set, so train and test are disjoint by question string and
    the test set does not change with ``n_train``.
    """
    import numpy as np

    if task not in ARITHMETIC_TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(ARITHMETIC_TASKS)}")
    emin, emax = resolve_entropy(task, difficulty, entropy)
    fn = _module_function(task, emin, emax)
    module_file = ensure_mathematics_dataset()[ARITHMETIC_TASKS[task][0]].__file__
    source = f"mathematics_dataset=={MATH_DATASET_VERSION}:{ARITHMETIC_TASKS[task][0]}.{task}"
    need = n_train + n_test
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % (2**32))
    seen: set[str] = set()
    rows: list[dict] = []
    dropped = {"base": 0, "length": 0, "duplicate": 0}
    attempts = last_new = 0
    stall_limit = max(5_000, need)  # draws without a new question before we give up
    t0 = time.perf_counter()
    try:
        while len(rows) < need:
            attempts += 1
            if attempts - last_new > stall_limit or attempts > max_attempts_factor * need + 1000:
                raise RuntimeError(
                    f"only {len(rows)} distinct {task} questions (of {need} asked) after {attempts} draws "
                    f"at entropy ({emin}, {emax}); raise the entropy or lower n_train/n_test")
            problem = fn()
            question, answer = str(problem.question), str(problem.answer)
            if question_base(question) > max_base:
                dropped["base"] += 1
                continue
            if len(question) > MAX_QUESTION_CHARS or len(answer) > MAX_ANSWER_CHARS:
                dropped["length"] += 1
                continue
            if question in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(question)
            last_new = attempts
            rows.append(arithmetic_row(question, answer, task, source))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    test, train = rows[:n_test], rows[n_test:]
    meta = {
        "kind": "arithmetic",
        "task": task,
        "source": source,
        "stand_in_for": None,
        "licenses": [MATH_DATASET_LICENSE],
        "inputs": [{"name": f"mathematics-dataset=={MATH_DATASET_VERSION}", "generator": source,
                    "module_file": f"mathematics_dataset/modules/{Path(module_file).name}",
                    "sha256": sha256_file(module_file)}],
        "seed": seed,
        "settings": {"entropy": [emin, emax], "difficulty": difficulty, "max_base": max_base,
                     "max_question_chars": MAX_QUESTION_CHARS, "max_answer_chars": MAX_ANSWER_CHARS,
                     "format": "{question} Solution: {answer}", "split": "first n_test distinct "
                     "questions are test, the next n_train train"},
        "dropped": dropped,
        "draws": attempts,
    }
    _MATH_CACHE["last_seconds"] = time.perf_counter() - t0
    return train, test, meta


def _clean_math_string(s: Any) -> str:
    """math_dataset on the hub has stored values as ``"b'...\\n'"`` byte reprs; undo that."""
    if isinstance(s, bytes):
        s = s.decode("utf-8")
    s = str(s)
    if len(s) >= 3 and s[0] == "b" and s[1] in "'\"" and s[-1] == s[1]:
        import ast

        try:
            v = ast.literal_eval(s)
            s = v.decode("utf-8") if isinstance(v, bytes) else str(v)
        except (ValueError, SyntaxError):
            pass
    return s.strip()


def load_hub_arithmetic(task: str, *, hub_id: str = "deepmind/math_dataset", config: str | None = None,
                        n_train: int, n_test: int, seed: int = 0, max_base: int = 10,
                        revision: str | None = None, streaming: bool | None = None):
    """``(train, test, meta)`` from math_dataset (columns ``question``, ``answer``; train/test splits)."""
    if config is None:
        config = f"{ARITHMETIC_TASKS[task][0]}__{task}"
    source = _hub_source_name(hub_id, config)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        ds = _shuffled(load_hub_dataset(hub_id, config=config, split=split, revision=revision,
                                        streaming=streaming), seed)
        rows, seen = [], set(splits.get("train_questions", ()))
        for ex in ds:
            if len(rows) >= n:
                break
            q, a = _clean_math_string(ex["question"]), _clean_math_string(ex["answer"])
            if question_base(q) > max_base or q in seen:
                continue
            seen.add(q)
            rows.append(arithmetic_row(q, a, task, source))
        splits[split] = rows
        if split == "train":
            splits["train_questions"] = {r["question"] for r in rows}
    meta = {"kind": "arithmetic", "task": task, "source": source, "stand_in_for": None,
            "licenses": ["Apache-2.0 (math_dataset)"], "inputs": _hub_inputs(hub_id, config, revision),
            "seed": seed, "settings": {"max_base": max_base, "hub_config": config,
                                       "format": "{question} Solution: {answer}"}}
    return splits["train"], splits["test"], meta


# ----------------------------------------------------------------------------------------------
# text (paper §6.2): openwebtext on the hub; offline, the Wikipedia sample in the gensim wheel

_WIKI_DROP_BLOCKS = re.compile(
    r"<(ref|math|gallery|timeline|syntaxhighlight|source|pre|score|imagemap|chem|hiero|graph|table)\b[^>]*?"
    r"(?:/>|>.*?</\1\s*>)", re.S | re.I)
_WIKI_COMMENT = re.compile(r"<!--.*?-->", re.S)
_WIKI_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_WIKI_TABLE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S)
_WIKI_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_WIKI_EXTLINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+(?:\s+([^\]]*))?\]")
_WIKI_TAG = re.compile(r"</?[A-Za-z][^<>]*?/?>")
_WIKI_DROP_NS = {"file", "image", "category", "media", "wikipedia", "wp", "template", "help",
                 "portal", "special", "user", "talk", "wikt", "wiktionary", "s", "q", "n", "b", "v",
                 "commons", "meta", "mw", "species", "wikisource", "wikiquote", "wikibooks", "d"}
_WIKI_BAD_CHARS = re.compile(r"[{}\[\]|<>=]|https?:|&\w+;|__")


def _wiki_link(m: re.Match) -> str:
    inner = m.group(1)
    target, _, label = inner.partition("|")
    t = target.strip()
    if ":" in t and not t.startswith(":"):
        ns = t.split(":", 1)[0].strip().lower()
        if ns in _WIKI_DROP_NS or re.fullmatch(r"[a-z]{2,3}(-[a-z]+)?", ns):
            return ""
    text = inner.rsplit("|", 1)[1] if "|" in inner else t.lstrip(":")
    return text


def _iterate_sub(pattern: re.Pattern, repl, text: str, limit: int = 50) -> str:
    for _ in range(limit):
        new = pattern.sub(repl, text)
        if new == text:
            break
        text = new
    return text


def strip_wiki_markup(wikitext: str, *, min_words: int = 20) -> list[str]:
    """Plain-prose paragraphs of one article's wikitext (templates, tables, refs, files, lists and
    headings removed; links replaced by their labels). Paragraphs shorter than ``min_words`` words or
    with leftover markup are dropped."""
    s = _WIKI_COMMENT.sub("", wikitext)
    s = _WIKI_DROP_BLOCKS.sub("", s)
    s = re.sub(r"<ref\b[^>]*/>", "", s, flags=re.I)
    s = _iterate_sub(_WIKI_TEMPLATE, "", s)
    s = _iterate_sub(_WIKI_TABLE, "", s)
    s = _iterate_sub(_WIKI_LINK, _wiki_link, s)
    s = _WIKI_EXTLINK.sub(lambda m: m.group(1) or "", s)
    s = re.sub(r"'{2,}", "", s)
    s = _WIKI_TAG.sub("", s)
    s = html.unescape(s).replace("\xa0", " ").replace("\u200b", "")
    paragraphs = []
    for line in s.split("\n"):
        line = line.strip()
        if not line or line[0] in "=*#:;|!{}" or line.startswith("__"):
            continue
        line = re.sub(r"\(\s*[,;:]?\s*\)", "", line)  # "()" left by removed templates
        line = re.sub(r"\(\s*[,;]\s*", "(", line)
        line = re.sub(r"\s+([,.;:!?)])", r"\1", line)
        line = re.sub(r"\(\s+", "(", line)
        line = re.sub(r"[ \t]{2,}", " ", line).strip()
        if len(line.split()) < min_words or _WIKI_BAD_CHARS.search(line):
            continue
        if not re.search(r"[.!?\"')]$", line):
            continue
        paragraphs.append(line)
    return paragraphs


def iter_wiki_pages(xml_bytes: bytes) -> Iterator[tuple[str, str]]:
    """(title, wikitext) of the main-namespace, non-redirect pages of a MediaWiki XML export."""
    import io

    title, ns, text, redirect = None, None, None, False
    for _, elem in ElementTree.iterparse(io.BytesIO(xml_bytes), events=("end",)):
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag == "title":
            title = elem.text or ""
        elif tag == "ns":
            ns = (elem.text or "").strip()
        elif tag == "redirect":
            redirect = True
        elif tag == "text":
            text = elem.text or ""
        elif tag == "page":
            if ns in ("0", None) and not redirect and text and not text.lstrip().upper().startswith("#REDIRECT"):
                yield title or "", text
            title, ns, text, redirect = None, None, None, False
            elem.clear()


def wiki_sample_paragraphs(wheel_path: str | os.PathLike | None = None, *,
                           cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                           member: WheelMember = WIKI_MEMBER, min_words: int = 20) -> tuple[list[dict], dict]:
    """Paragraph rows from the Wikipedia sample in the gensim wheel (fetched if ``wheel_path`` is None).

    Returns ``(rows, info)``; rows carry ``title`` (the article) and are in article order.
    """
    if wheel_path is None:
        wheel_path = fetch_wheel(GENSIM_WHEEL, cache_dir)
        wheel_name = GENSIM_WHEEL.requirement
    else:
        wheel_name = Path(wheel_path).name
    raw = read_wheel_member(wheel_path, member)
    xml_bytes = bz2.decompress(raw) if member.path.endswith(".bz2") else raw
    rows, seen = [], set()
    n_pages = 0
    for title, text in iter_wiki_pages(xml_bytes):
        n_pages += 1
        for p in strip_wiki_markup(text, min_words=min_words):
            if p in seen:
                continue
            seen.add(p)
            rows.append({"prompt": "", "completion": p, "title": title})
    info = {"wheel": wheel_name, "wheel_file": Path(wheel_path).name, "wheel_sha256": sha256_file(wheel_path),
            "member": member.path, "member_sha256": sha256_bytes(raw), "xml_sha256": sha256_bytes(xml_bytes),
            "pages": n_pages, "paragraphs": len(rows), "chars": sum(len(r["completion"]) for r in rows)}
    return rows, info


def split_by_group(rows: Sequence[dict], key: str, *, n_test: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Seeded split keeping every group (e.g. article) on one side; test gets ~``n_test`` rows, exactly
    ``n_test`` after truncation. Both sides come back shuffled."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    test, train = [], []
    for name in names:
        (test if len(test) < n_test else train).extend(groups[name])
    rng = random.Random(seed + 1)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test[:n_test]


def build_text(source: str, *, n_train: int | None, n_test: int, seed: int = 0,
               cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, wheel_path: str | None = None,
               wiki_member: WheelMember = WIKI_MEMBER, hub_id: str = "Skylion007/openwebtext",
               hub_config: str | None = None,
               revision: str | None = None, streaming: bool | None = None, min_words: int = 20,
               max_chars: int | None = None) -> tuple[list[dict], list[dict], dict]:
    """Text rows ``(train, test, meta)``: paragraphs of the Wikipedia sample, or hub documents."""
    if source == "wiki-sample":
        rows, info = wiki_sample_paragraphs(wheel_path, cache_dir=cache_dir, member=wiki_member,
                                            min_words=min_words)
        if max_chars:
            rows = [r for r in rows if len(r["completion"]) <= max_chars]
        src = f"wiki-sample:{info['wheel']}:{wiki_member.path.rsplit('/', 1)[-1]}"
        for r in rows:
            r["source"] = src
        train, test = split_by_group(rows, "title", n_test=n_test, seed=seed)
        if n_train is not None:
            train = train[:n_train]
        if len(test) < n_test:
            raise DataSourceError(f"wiki sample has only {len(rows)} paragraphs; cannot hold out {n_test}")
        meta = {"kind": "text", "source": src, "stand_in_for": "openwebtext (paper §6.2)",
                "licenses": [WIKI_LICENSE], "inputs": [info], "seed": seed,
                "settings": {"min_words": min_words, "max_chars": max_chars,
                             "unit": "paragraph; train/test split by article"}}
        return train, test, meta
    if source != "hub":
        raise ValueError(f"unknown text source {source!r}")
    src = _hub_source_name(hub_id, hub_config)
    ds = _shuffled(load_hub_dataset(hub_id, config=hub_config, split="train", revision=revision,
                                    streaming=streaming), seed)
    n_train = 200_000 if n_train is None else n_train
    train, test, seen = [], [], set()
    for ex in ds:
        if len(train) >= n_train:
            break
        text = str(ex["text"]).strip()
        if not text or text in seen or (max_chars and len(text) > max_chars):
            continue
        seen.add(text)
        row = {"prompt": "", "completion": text, "source": src}
        (test if len(test) < n_test else train).append(row)
    meta = {"kind": "text", "source": src, "stand_in_for": None, "licenses": ["see the hub dataset card"],
            "inputs": _hub_inputs(hub_id, hub_config, revision), "seed": seed,
            "settings": {"max_chars": max_chars, "unit": "document; first n_test of the seeded "
                         "shuffle are test"}}
    return train, test, meta


def text_eval_prompts(rows: Sequence[dict], tokenizer, *, prompt_tokens: int, n: int | None = None,
                      seed: int = 0, min_continuation_tokens: int = 1) -> list[dict]:
    """Evaluation prompts: the first ``prompt_tokens`` tokens of each text row (rows too short are
    skipped). Each prompt row has ``prompt_ids`` (token ids, no ``<bos>``), ``prompt`` (their
    decoding), ``completion`` (the decoded rest of the row: the human reference) and ``source``."""
    order = _seeded_order(len(rows), seed)
    out = []
    for i in order:
        if n is not None and len(out) >= n:
            break
        r = rows[i]
        text = r["prompt"] + r["completion"]
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) < prompt_tokens + min_continuation_tokens:
            continue
        out.append({"prompt": tokenizer.decode(ids[:prompt_tokens]), "prompt_ids": ids[:prompt_tokens],
                    "completion": tokenizer.decode(ids[prompt_tokens:]),
                    "source": r.get("source", ""), **({"title": r["title"]} if "title" in r else {})})
    return out


# ----------------------------------------------------------------------------------------------
# translation (App. G.2): opus_books en-fr on the hub; offline, French gettext catalogs in wheels


@dataclass
class CatalogEntry:
    msgid: str
    msgstr: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr_plural: dict[int, str] = field(default_factory=dict)
    flags: frozenset = frozenset()
    obsolete: bool = False


_PO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b",
               "f": "\f", "v": "\v", "'": "'", "?": "?"}


def _po_unquote(s: str) -> str:
    s = s.strip()
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise ValueError(f"bad PO string {s!r}")
    body = s[1:-1]

    def rep(m: re.Match) -> str:
        e = m.group(1)
        if e[0] in "01234567":
            return chr(int(e, 8))
        return _PO_ESCAPES.get(e, e)

    return re.sub(r"\\([0-7]{1,3}|.)", rep, body)


def parse_po(text: str) -> list[CatalogEntry]:
    """Entries of a gettext .po file (the header entry, msgid "", included)."""
    entries: list[CatalogEntry] = []
    cur: dict[str, Any] = {}
    key: Any = None

    def flush():
        nonlocal cur, key
        if "msgid" in cur:
            entries.append(CatalogEntry(
                msgid=cur["msgid"], msgstr=cur.get("msgstr", cur.get("msgstr_plural", {}).get(0, "")),
                msgctxt=cur.get("msgctxt"), msgid_plural=cur.get("msgid_plural"),
                msgstr_plural=cur.get("msgstr_plural", {}), flags=frozenset(cur.get("flags", ())),
                obsolete=cur.get("obsolete", False)))
        cur, key = {}, None

    for raw in text.splitlines():
        line = raw.strip()
        obsolete = False
        if line.startswith("#~"):
            obsolete, line = True, line[2:].strip()
            if line.startswith("|"):
                continue
        if not line:
            if "msgstr" in cur or "msgstr_plural" in cur:
                flush()
            continue
        if line.startswith("#"):
            if "msgstr" in cur or "msgstr_plural" in cur:
                flush()
            if line.startswith("#,"):
                cur.setdefault("flags", set()).update(f.strip() for f in line[2:].split(",") if f.strip())
            continue
        if obsolete:
            cur["obsolete"] = True
        m = re.match(r"(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")$", line)
        if m:
            kw, idx, val = m.group(1), m.group(2), _po_unquote(m.group(3))
            if kw in ("msgctxt", "msgid") and ("msgstr" in cur or "msgstr_plural" in cur):
                flush()
                if obsolete:
                    cur["obsolete"] = True
            if idx is not None:
                cur.setdefault("msgstr_plural", {})[int(idx)] = val
                key = ("msgstr_plural", int(idx))
            else:
                cur[kw] = val
                key = kw
        elif line.startswith('"') and key is not None:
            val = _po_unquote(line)
            if isinstance(key, tuple):
                cur["msgstr_plural"][key[1]] += val
            else:
                cur[key] += val
        else:
            raise ValueError(f"unparsable PO line: {raw!r}")
    flush()
    return entries


def parse_mo(data: bytes) -> list[CatalogEntry]:
    """Entries of a compiled gettext .mo file (msgfmt leaves fuzzy entries out of these)."""
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        end = "<"
    elif magic == 0xDE120495:
        end = ">"
    else:
        raise ValueError("not a gettext .mo file")
    _, n, orig_off, trans_off = struct.unpack(end + "4I", data[4:20])
    entries = []
    for i in range(n):
        olen, ooff = struct.unpack(end + "2I", data[orig_off + 8 * i: orig_off + 8 * i + 8])
        tlen, toff = struct.unpack(end + "2I", data[trans_off + 8 * i: trans_off + 8 * i + 8])
        orig = data[ooff: ooff + olen].decode("utf-8")
        trans = data[toff: toff + tlen].decode("utf-8")
        ctx = None
        if "\x04" in orig:
            ctx, orig = orig.split("\x04", 1)
        msgid, _, plural = orig.partition("\x00")
        forms = trans.split("\x00")
        entries.append(CatalogEntry(msgid=msgid, msgstr=forms[0], msgctxt=ctx, msgid_plural=plural or None,
                                    msgstr_plural=dict(enumerate(forms)) if plural else {}))
    return entries


# Placeholders, markup, format strings, code: anything that is not plain natural language.
_NOT_PROSE = re.compile(
    r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[sdifgeExXcrubo%]"  # printf / python %-format
    r"|%\d|%[A-Za-z_]\w*%"  # %1 (Qt), %name% placeholders
    r"|[{}<>\[\]`|\\^~=_*#@$]"  # braces ({0}, {{x}}, ${x}), markup, markdown, code, emails
    r"|&[A-Za-z#]\w*;"  # HTML entities
    r"|://|\bwww\.|[A-Za-z0-9]\.[A-Za-z0-9]"  # URLs, file names, dotted identifiers (d3.js, e.g.)
    r"|\s{2,}|\n|\t"  # layout
)
_LETTER = re.compile(r"[^\W\d_]")


def is_natural_language(s: str, *, min_words: int = 1) -> bool:
    """Plain natural-language text: no placeholders, markup, format strings, URLs or layout; mostly
    letters; at least ``min_words`` words."""
    s = s.strip()
    if not s or _NOT_PROSE.search(s):
        return False
    letters = len(_LETTER.findall(s))
    if letters < 2 or letters < 0.6 * len(s.replace(" ", "")):
        return False
    return len(s.split()) >= min_words


def catalog_pairs(entries: Iterable[CatalogEntry], *, min_words: int = 2) -> tuple[list[tuple[str, str]], dict]:
    """(en, fr) pairs from catalog entries: translated, not fuzzy, not obsolete, not plural, natural
    language on both sides (:func:`is_natural_language`), French different from English."""
    pairs, stats = [], {"entries": 0, "untranslated": 0, "fuzzy": 0, "obsolete": 0, "plural": 0,
                        "not_natural_language": 0, "identical": 0, "kept": 0}
    for e in entries:
        if e.msgid == "":
            continue  # header
        stats["entries"] += 1
        if e.obsolete:
            stats["obsolete"] += 1
        elif "fuzzy" in e.flags:
            stats["fuzzy"] += 1
        elif e.msgid_plural is not None:
            stats["plural"] += 1
        elif not e.msgstr.strip():
            stats["untranslated"] += 1
        elif not (is_natural_language(e.msgid, min_words=min_words) and is_natural_language(e.msgstr)):
            stats["not_natural_language"] += 1
        elif e.msgid.strip() == e.msgstr.strip():
            stats["identical"] += 1
        else:
            stats["kept"] += 1
            pairs.append((" ".join(e.msgid.split()), " ".join(e.msgstr.split())))
    return pairs, stats


@dataclass(frozen=True)
class CatalogSource:
    """French gettext catalogs (members) of one pinned wheel, and the license they are under."""

    wheel: PinnedWheel
    members: tuple[WheelMember, ...]
    license: str


_INDICO = "indico/translations/fr_FR/LC_MESSAGES/"
_SUPERSET = "superset/translations/fr/LC_MESSAGES/"
_JLAB = "jupyterlab_language_pack_fr_FR/locale/fr_FR/LC_MESSAGES/"
GETTEXT_SOURCES: tuple[CatalogSource, ...] = (
    CatalogSource(
        PinnedWheel("indico", "3.2.9", "indico-3.2.9-py3-none-any.whl", license="MIT"),
        (WheelMember(_INDICO + "messages.po", "54dd9b34cf15bc6202babc5c8d3132402c07d2ead3ee998e7c94695bbdb96cb1"),
         WheelMember(_INDICO + "messages-react.po", "940389aea610cb7806389979e9d2d02535cf62aeeebc9fe4f249378a07477fc9"),
         WheelMember(_INDICO + "messages-js.po", "efc8fd5ca6b845eef21dc57a507c6f93ceb51de5ff270b781bc572ed62b1a4cf")),
        license="MIT"),
    CatalogSource(
        PinnedWheel("apache-superset", "5.0.0", "apache_superset-5.0.0-py3-none-any.whl", license="Apache-2.0"),
        (WheelMember(_SUPERSET + "messages.po", "d109e9974d47881f054e01110cc851fe8865c0030d682f2bdd4597410de71422"),),
        license="Apache-2.0"),
    CatalogSource(
        PinnedWheel("jupyterlab-language-pack-fr-fr", "4.4.post3",
                    "jupyterlab_language_pack_fr_fr-4.4.post3-py2.py3-none-any.whl", license="BSD-3-Clause"),
        tuple(WheelMember(_JLAB + name, sha) for name, sha in (
            ("jupyterlab.mo", "131a088312b4aec8b0eee67e1b83516972bc6891a109ae6cf0ae044bf7f6078b"),
            ("jupyterlab_git.mo", "d94280d7a9debdad637bba4e51398e20bf8c4ce0ff9ebd25a73a9b32db79cae9"),
            ("jupyterlab_lsp.mo", "45486ec80c7293479735166488a9593ed78c41894cf48ce016a17aaf0e3e2140"),
            ("jupyterlab_tour.mo", "1554866019c16a192cb7bf14109d8262a58b041265a7c055ac7e01e1b0f3abf8"),
            ("notebook.mo", "c491b0526cea2512b2a9e4e6a3c24d1135151671c7c1af265fcf77e73f4c8cb0"),
            ("nbdime.mo", "89caf12e37660eb30dd2e0311139bc94229f32c6fcce31f9eee75ecb57e1324d"),
            ("jupyter_resource_usage.mo", "43562747ef607d975a8015a9705bc55a9d7e9837b3d8b66288b0f4115babe088"),
            ("jupyter_collaboration.mo", "d88080db71baa2c3ffb7eefcfca204b965e1259c18840abc26e18f016930fe12"),
            ("jupytext.mo", "5720f209c28d4940c4d985e10a3cdcac1220c493976b8edb43d56910dd2ad110"),
            ("spellchecker.mo", "a6c580c162101999184e1ea140f2d228acf5c12753a042bedc04c5a8640c5bd9"),
            ("jupyterlab_spreadsheet_editor.mo", "ef17c9ca1ed6a402425b55b974c64271c72bd81257e8ddc3d0575a69ee19ddc2"),
            ("jupyterlab_search_replace.mo", "974afe4ee2a683c1a49384761d5bd317e279a8e3475baba5db9f078832f49c45"),
            ("dask_labextension.mo", "5ee4401d54d047f518394a82dbd7ed9f69823a7f2972d24c4451907274e62812"),
            ("retrolab.mo", "64cab3fc18383ca856ac9bdffbd2ab68ee87793c7b4423c02345a0932b3fb3ac"),
            ("jupyter_archive.mo", "e3218526bbd08fa479f52ea349e44f565e1f5e8fd37dffcaf912cd8a44d22052"),
            ("jupyterlab_recents.mo", "13dd8c7f8cc3ffdd371da8a1390f0d9a9993a5b93e64311bb415970fffb1feb5"),
            ("jupyterlab_widgets.mo", "38dcb9f8686bc0d864ddaecfe9df73d86c35fe21a5a49e9b8cdca4588c3d9dfe"),
        )),
        license="BSD-3-Clause"),
)


def translation_row(en: str, fr: str, source: str, license: str) -> dict:
    return {"prompt": f"English: {en}\nFrench:", "completion": " " + fr, "en": en, "fr": fr,
            "source": source, "license": license}


def gettext_pairs(sources: Sequence[CatalogSource] = GETTEXT_SOURCES, *,
                  cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                  wheel_paths: dict[str, str | os.PathLike] | None = None,
                  min_words: int = 2) -> tuple[list[dict], list[dict]]:
    """Translation rows from the catalogs of ``sources`` (wheels fetched unless in ``wheel_paths``,
    keyed by distribution name), de-duplicated by English (first source wins), and per-member info."""
    rows, infos, seen = [], [], set()
    for src in sources:
        path = (wheel_paths or {}).get(src.wheel.name) or fetch_wheel(src.wheel, cache_dir)
        wheel_sha = sha256_file(path)
        for member in src.members:
            data = read_wheel_member(path, member)
            entries = parse_mo(data) if member.path.endswith(".mo") else parse_po(data.decode("utf-8"))
            pairs, stats = catalog_pairs(entries, min_words=min_words)
            name = f"gettext:{src.wheel.requirement}:{member.path}"
            kept = 0
            for en, fr in pairs:
                if en in seen:
                    continue
                seen.add(en)
                kept += 1
                rows.append(translation_row(en, fr, name, src.license))
            infos.append({"wheel": src.wheel.requirement, "wheel_file": Path(path).name, "wheel_sha256": wheel_sha,
                          "member": member.path, "member_sha256": sha256_bytes(data), "license": src.license,
                          "stats": stats, "pairs_after_dedup": kept})
    return rows, infos


def estimate_tokens(text: str) -> int:
    """Token count estimate when no tokenizer is given: max(words, ceil(chars / 3)). Llama-2's
    tokenizer averages about 3.5-4 characters per token on English and fewer on French, so this
    errs on the long side (keeps the filter at least as strict as the paper's)."""
    return max(len(text.split()), math.ceil(len(text) / 3))


def _length_fn(tokenizer) -> Callable[[str], int]:
    if tokenizer is None:
        return estimate_tokens
    return lambda s: len(tokenizer.encode(s, add_special_tokens=False))


def build_translation(source: str, *, n_train: int | None, n_test: int, seed: int = 0, max_tokens: int = 64,
                      tokenizer=None, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                      sources: Sequence[CatalogSource] = GETTEXT_SOURCES,
                      wheel_paths: dict[str, str | os.PathLike] | None = None, min_words: int = 2,
                      hub_id: str = "Helsinki-NLP/opus_books", hub_config: str = "en-fr",
                      revision: str | None = None, streaming: bool | None = None):
    """en->fr rows ``(train, test, meta)``; both sides under ``max_tokens`` tokens (App. G.2)."""
    length = _length_fn(tokenizer)
    length_name = "tokenizer" if tokenizer is not None else "estimate: max(words, ceil(chars/3))"
    if source == "gettext":
        rows, infos = gettext_pairs(sources, cache_dir=cache_dir, wheel_paths=wheel_paths, min_words=min_words)
        src = "gettext:" + ",".join(s.wheel.requirement for s in sources)
        licenses = sorted({f"{s.wheel.requirement}: {s.license}" for s in sources})
        stand_in = "opus_books en-fr (paper App. G.2)"
        inputs = infos
    elif source == "hub":
        src = _hub_source_name(hub_id, hub_config)
        ds = load_hub_dataset(hub_id, config=hub_config, split="train", revision=revision, streaming=streaming)
        rows, seen = [], set()
        for ex in ds:
            t = ex["translation"]
            en, fr = " ".join(str(t["en"]).split()), " ".join(str(t["fr"]).split())
            if not en or not fr or en in seen:
                continue
            seen.add(en)
            rows.append(translation_row(en, fr, src, "see the hub dataset card (OPUS Books)"))
        licenses, stand_in = ["see the hub dataset card (OPUS Books)"], None
        inputs = _hub_inputs(hub_id, hub_config, revision)
    else:
        raise ValueError(f"unknown translation source {source!r}")
    n_all = len(rows)
    rows = [r for r in rows if length(r["en"]) < max_tokens and length(r["fr"]) < max_tokens]
    order = _seeded_order(len(rows), seed)
    test = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:]]
    if n_train is not None:
        train = train[:n_train]
    meta = {"kind": "translation", "source": src, "stand_in_for": stand_in, "licenses": licenses,
            "inputs": inputs, "seed": seed,
            "settings": {"max_tokens": max_tokens, "length": length_name, "min_words_en": min_words,
                         "pairs_before_length_filter": n_all, "pairs_after_length_filter": len(rows),
                         "format": "prompt 'English: {en}\\nFrench:', completion ' {fr}'",
                         "dedup": "by English string; train and test disjoint by English"}}
    return train, test, meta


# ----------------------------------------------------------------------------------------------
# tokenizers


def corpus_texts(paths: Sequence[str | os.PathLike]) -> Iterator[str]:
    """Texts of JSONL corpora: ``prompt + completion`` of every row (the strings a trajectory holds)."""
    for p in paths:
        for row in read_jsonl(p):
            yield row.get("prompt", "") + row.get("completion", "")


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, out_dir: str | os.PathLike | None = None,
                    min_frequency: int = 2):
    """Byte-level BPE with digits split individually (as Llama) and specials ``<pad> <bos> <eos>
    <bkspc>`` (ids 0-3). Encoding adds no specials; decoding round-trips any text exactly. Saved with
    ``save_pretrained`` if ``out_dir`` is given. Returns a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=PAD_TOKEN, additional_special_tokens=[BKSPC_TOKEN],
                                   clean_up_tokenization_spaces=False)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def load_tokenizer(name_or_path: str | os.PathLike, add_bkspc: bool = True):
    """A model's tokenizer (local dir or hub name) with ``<bkspc>`` added as a special token (and a
    ``<pad>`` if it has no pad token). Tokenizers written by :func:`train_tokenizer` already have all
    four specials. ``tok.convert_tokens_to_ids("<bkspc>")`` is the backspace id."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(name_or_path))
    if add_bkspc and BKSPC_TOKEN not in tok.get_vocab():
        # add_tokens(special_tokens=True) has the same meaning in transformers 4.x and 5.x: one id,
        # never split, not normalized, dropped by decode(skip_special_tokens=True).
        tok.add_tokens([AddedToken(BKSPC_TOKEN, special=True, normalized=False)], special_tokens=True)
    if tok.pad_token is None:
        tok.add_special_tokens({"pad_token": PAD_TOKEN})
    return tok


# ----------------------------------------------------------------------------------------------
# CLI


def _add_common(p: argparse.ArgumentParser, *, n_train_help: str, n_test_help: str) -> None:
    p.add_argument("--out-dir", required=True, help="directory for train.jsonl, test.jsonl, meta.json")
    p.add_argument("--n-train", type=int, default=None, help=n_train_help)
    p.add_argument("--n-test", type=int, default=None, help=n_test_help)
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files; default 0)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR,
                   help="download/wheel cache (default: resources/ under the current directory)")


def _add_hub(p: argparse.ArgumentParser, hub_id: str, hub_config: str | None, config_help: str = "") -> None:
    p.add_argument("--hub-id", default=hub_id,
                   help=f"datasets hub id, or a local file/dir in its column layout (default {hub_id})")
    p.add_argument("--hub-config", default=hub_config,
                   help=f"hub dataset config (default {config_help or hub_config})")
    p.add_argument("--hub-revision", default=None, help="hub dataset revision (default: main)")
    p.add_argument("--no-streaming", action="store_true",
                   help="download the whole hub dataset instead of streaming it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seqmatch.data", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("arithmetic", help="mathematics_dataset questions: '{question} Solution: {answer}'")
    _add_common(p, n_train_help="training questions (default 5000; list_prime_factors 50000, as the paper)",
                n_test_help="test questions (default 200)")
    p.add_argument("--task", required=True, choices=sorted(ARITHMETIC_TASKS), help="mathematics_dataset module")
    p.add_argument("--source", choices=("generator", "hub"), default="generator",
                   help="generator: mathematics_dataset 1.0.1 (offline); hub: math_dataset through datasets")
    p.add_argument("--difficulty", type=float, default=None,
                   help="fraction d in [0,1] of the module's training entropy range (3,10) to use: "
                        "entropy (3, 3+7d); default 1 = the full range (the paper's data)")
    p.add_argument("--entropy", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
                   help="entropy range passed to the module function (overrides --difficulty); about the "
                        "number of decimal digits shared by the operands, e.g. '2 4' for small numbers a "
                        "CPU model learns")
    p.add_argument("--max-base", type=int, default=10, help="drop add_or_sub_in_base questions above this base")
    _add_hub(p, "deepmind/math_dataset", None, "arithmetic__<task>, numbers__list_prime_factors")

    p = sub.add_parser("text", help="text paragraphs/documents (prompt='', completion=text)")
    _add_common(p, n_train_help="training rows (default: all for wiki-sample, 200000 for hub)",
                n_test_help="held-out rows (default 500 for wiki-sample, 2000 for hub)")
    p.add_argument("--source", choices=("wiki-sample", "hub"), required=True,
                   help="wiki-sample: Wikipedia sample in the gensim 4.4.0 wheel (offline); hub: openwebtext")
    p.add_argument("--wheel", default=None, help="use this gensim wheel file instead of fetching the pinned one")
    p.add_argument("--min-words", type=int, default=20, help="wiki-sample: drop paragraphs with fewer words")
    p.add_argument("--max-chars", type=int, default=None, help="drop rows longer than this many characters")
    _add_hub(p, "Skylion007/openwebtext", None, "none")

    p = sub.add_parser("translation", help="en->fr pairs: prompt 'English: {en}\\nFrench:', completion ' {fr}'")
    _add_common(p, n_train_help="training pairs (default: all that pass the filters)",
                n_test_help="test pairs (default 300 for gettext, 1000 for hub)")
    p.add_argument("--source", choices=("gettext", "hub"), required=True,
                   help="gettext: French catalogs in pinned wheels (offline); hub: opus_books en-fr")
    p.add_argument("--max-tokens", type=int, default=64, help="keep pairs with both sides under this many tokens")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer dir/name for the length filter (default: estimate max(words, ceil(chars/3)))")
    p.add_argument("--min-words", type=int, default=2, help="gettext: minimum English words per entry")
    _add_hub(p, "Helsinki-NLP/opus_books", "en-fr")

    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer with <pad> <bos> <eos> <bkspc>")
    p.add_argument("--corpus", nargs="+", required=True, help="JSONL files; prompt+completion of each row")
    p.add_argument("--vocab-size", type=int, required=True, help="vocabulary size including the specials")
    p.add_argument("--min-frequency", type=int, default=2, help="minimum pair frequency for a merge")
    p.add_argument("--out-dir", required=True, help="Hugging Face tokenizer directory to write")

    p = sub.add_parser("text-prompts", help="evaluation prompts of a fixed token length from text rows")
    p.add_argument("--data", required=True, help="text JSONL (e.g. DIR/test.jsonl)")
    p.add_argument("--tokenizer", required=True, help="tokenizer dir or name")
    p.add_argument("--prompt-tokens", type=int, required=True, help="prompt length in tokens (paper: 256)")
    p.add_argument("--n", type=int, default=None, help="number of prompts (default: all long enough)")
    p.add_argument("--min-continuation-tokens", type=int, default=1,
                   help="skip rows with fewer tokens left after the prompt")
    p.add_argument("--seed", type=int, default=0, help="order in which rows are taken")
    p.add_argument("--out", required=True, help="output JSONL (a .meta.json is written beside it)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    streaming = False if getattr(args, "no_streaming", False) else None
    if args.cmd == "arithmetic":
        n_train = args.n_train if args.n_train is not None else (
            50_000 if args.task == "list_prime_factors" else 5_000)
        n_test = 200 if args.n_test is None else args.n_test
        if args.source == "generator":
            train, test, meta = generate_arithmetic(args.task, n_train=n_train, n_test=n_test, seed=args.seed,
                                                    difficulty=args.difficulty, entropy=args.entropy,
                                                    max_base=args.max_base)
        else:
            train, test, meta = load_hub_arithmetic(args.task, hub_id=args.hub_id, config=args.hub_config,
                                                    n_train=n_train, n_test=n_test, seed=args.seed,
                                                    max_base=args.max_base, revision=args.hub_revision,
                                                    streaming=streaming)
    elif args.cmd == "text":
        n_test = args.n_test if args.n_test is not None else (500 if args.source == "wiki-sample" else 2000)
        train, test, meta = build_text(args.source, n_train=args.n_train, n_test=n_test, seed=args.seed,
                                       cache_dir=args.cache_dir, wheel_path=args.wheel, hub_id=args.hub_id,
                                       hub_config=args.hub_config, revision=args.hub_revision,
                                       streaming=streaming, min_words=args.min_words, max_chars=args.max_chars)
    elif args.cmd == "translation":
        n_test = args.n_test if args.n_test is not None else (300 if args.source == "gettext" else 1000)
        tok = load_tokenizer(args.tokenizer, add_bkspc=False) if args.tokenizer else None
        train, test, meta = build_translation(args.source, n_train=args.n_train, n_test=n_test, seed=args.seed,
                                              max_tokens=args.max_tokens, tokenizer=tok, cache_dir=args.cache_dir,
                                              min_words=args.min_words, hub_id=args.hub_id,
                                              hub_config=args.hub_config, revision=args.hub_revision,
                                              streaming=streaming)
        if args.tokenizer:
            meta["settings"]["length"] = f"tokenizer {Path(args.tokenizer).name}"
    elif args.cmd == "tokenizer":
        tok = train_tokenizer(corpus_texts(args.corpus), vocab_size=args.vocab_size, out_dir=args.out_dir,
                              min_frequency=args.min_frequency)
        meta = {"kind": "tokenizer", "algorithm": "byte-level BPE (tokenizers), digits split individually",
                "vocab_size": len(tok), "requested_vocab_size": args.vocab_size,
                "special_tokens": {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS},
                "inputs": [{"name": Path(c).name, "sha256": sha256_file(c)} for c in args.corpus]}
        write_json(Path(args.out_dir) / "meta.json", meta)
        print(json.dumps({"out_dir": args.out_dir, "vocab_size": len(tok)}))
        return meta
    elif args.cmd == "text-prompts":
        tok = load_tokenizer(args.tokenizer)
        rows = text_eval_prompts(read_jsonl(args.data), tok, prompt_tokens=args.prompt_tokens, n=args.n,
                                 seed=args.seed, min_continuation_tokens=args.min_continuation_tokens)
        write_jsonl(args.out, rows)
        meta = {"kind": "text-prompts", "inputs": [{"name": Path(args.data).name, "sha256": sha256_file(args.data)}],
                "tokenizer": Path(args.tokenizer).name, "prompt_tokens": args.prompt_tokens, "n": len(rows),
                "seed": args.seed}
        write_json(Path(str(args.out) + ".meta.json") if not str(args.out).endswith(".jsonl")
                   else Path(str(args.out)[:-len(".jsonl")] + ".meta.json"), meta)
        print(json.dumps({"out": args.out, "n": len(rows)}))
        return meta
    else:  # pragma: no cover - argparse enforces the choices
        raise ValueError(args.cmd)
    meta["command"] = args.cmd
    meta = write_split(args.out_dir, train, test, meta)
    print(json.dumps({"out_dir": args.out_dir, "sizes": meta["sizes"], "source": meta["source"],
                      "seconds": round(time.perf_counter() - t0, 2)}), file=sys.stderr)
    return meta


if __name__ == "__main__":
    try:
        main()
    except DataSourceError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
