"""Arithmetic data (paper §6.1, App. G.3, G.4): mathematics_dataset questions.

Rows: ``prompt = f"{question} Solution:"``, ``completion = f" {answer}"``, plus ``question``,
``answer``, ``base`` (10 unless the question is "In base b, ..."), ``task``.

Sources. Paper profile: ``deepmind/math_dataset`` through ``datasets`` (:func:`load_hub_arithmetic`).
Offline profile: the ``mathematics_dataset`` generator, the paper's own source
(:func:`generate_arithmetic`).

Defaults follow the paper: 5,000 train / 200 test (list_prime_factors 50,000 train) over
mathematics_dataset's full training entropy range (3, 10). Small numbers for a CPU model:
``--entropy 2 4`` (add_or_sub_in_base answers ~3 digits; all three tasks give 5,200 distinct
questions at that setting; list_prime_factors cannot at ``1 3``).
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from seqmatch.data.sources import _hub_inputs, _hub_source_name, _shuffled, hub_license, load_hub_dataset, sha256_file

SOLUTION_MARKER = "Solution:"


# ----------------------------------------------------------------------------------------------
# arithmetic (paper §6.1, App. G.3, G.4): mathematics_dataset's generator

ARITHMETIC_TASKS = {
    # task: (mathematics_dataset module, its training entropy range); the task is the module's
    # function of that name (math_dataset on the hub: config "<module>__<task>")
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


def arithmetic_row(question: str, answer: str, task: str, source: str, base: int | None | str = "question") -> dict:
    """A qa row: prompt ``{question} Solution:``, completion `` {answer}``. ``base``: the base of
    its digits (ground-truth noise), by default the question's (an arithmetic task's, 10 unless "In
    base b, ..."); None for a task without one (no ``base`` key: random noise only)."""
    question, answer = question.strip(), answer.strip()
    row = {
        "prompt": f"{question} {SOLUTION_MARKER}",
        "completion": f" {answer}",
        "question": question,
        "answer": answer,
        "base": question_base(question) if base == "question" else base,
        "task": task,
        "source": source,
    }
    if row["base"] is None:
        del row["base"]
    return row


def _module_function(task: str, emin: float, emax: float) -> Callable[[], Any]:
    mods = ensure_mathematics_dataset()  # the shim must precede any mathematics_dataset import
    from mathematics_dataset.util import composition

    module_name = ARITHMETIC_TASKS[task][0]
    fn = getattr(mods[module_name], task, None)
    if fn is None:
        raise ValueError(f"arithmetic task {task!r}: mathematics_dataset.modules.{module_name} has no function {task}")
    args = composition.PreSampleArgs(1, 1, emin, emax)
    # most module functions take the value to produce (None: any) before the sampling arguments
    if "value" in inspect.signature(fn).parameters:
        return lambda: fn(None, args)
    return lambda: fn(args)


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


MATH_DATASET_HUB_ID = "deepmind/math_dataset"


def load_hub_arithmetic(task: str, *, hub_id: str = MATH_DATASET_HUB_ID, config: str | None = None,
                        n_train: int, n_test: int, seed: int = 0, max_base: int = 10,
                        revision: str | None = None, streaming: bool | None = None, base: int | None = None):
    """``(train, test, meta)`` of a qa task from the hub or the user's files (columns ``question``,
    ``answer``; train/test splits): math_dataset for the arithmetic tasks, whose rows take their
    question's base; a task of its own takes ``base`` (None: its rows have none)."""
    builtin = task in ARITHMETIC_TASKS
    if config is None and builtin and not Path(hub_id).exists():  # math_dataset's config (your files have none)
        config = f"{ARITHMETIC_TASKS[task][0]}__{task}"
    source = _hub_source_name(hub_id, config)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        ds = _shuffled(load_hub_dataset(hub_id, config=config, split=split, revision=revision,
                                        streaming=streaming, fields=("question", "answer")), seed)
        rows, seen = [], set(splits.get("train_questions", ()))
        for ex in ds:
            if len(rows) >= n:
                break
            q, a = _clean_math_string(ex["question"]), _clean_math_string(ex["answer"])
            if (builtin and question_base(q) > max_base) or q in seen:
                continue
            seen.add(q)
            rows.append(arithmetic_row(q, a, task, source, "question" if builtin else base))
        splits[split] = rows
        if split == "train":
            splits["train_questions"] = {r["question"] for r in rows}
    licenses = [hub_license(hub_id, task, MATH_DATASET_HUB_ID, "Apache-2.0 (math_dataset)")]
    settings = {"max_base": max_base} if builtin else {"base": base}
    meta = {"kind": "arithmetic" if builtin else "qa", "task": task, "source": source, "stand_in_for": None,
            "licenses": licenses, "inputs": _hub_inputs(hub_id, config, revision), "seed": seed,
            "settings": {**settings, "hub_config": config, "format": "{question} Solution: {answer}"}}
    return splits["train"], splits["test"], meta
