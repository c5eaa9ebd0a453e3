"""Helpers of the table/figure scripts (run through Snakemake's `script:` directive)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Atomic writes come from seqmatch.io (atomic_savefig is re-exported for the figure scripts).
try:
    from seqmatch.io import atomic_savefig, atomic_write_text  # noqa: F401
except ImportError:  # seqmatch not installed in the rule's environment: import it from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from seqmatch.io import atomic_savefig, atomic_write_text  # noqa: F401


def log_to(snakemake) -> None:
    """Send stdout/stderr of the script to the rule's log file."""
    if snakemake.log:
        sys.stdout = sys.stderr = open(snakemake.log[0], "w")


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def num(value) -> float:
    """A JSON number (or None / 'nan') as a float; None -> NaN."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def mean_sd(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof 1; NaN for a single value) and count of the finite values."""
    x = np.asarray([num(v) for v in values], dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, 0
    sd = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    return float(np.mean(x)), sd, int(x.size)


def data_source(meta_path) -> str:
    """'wiki-sample (stand-in for openwebtext (paper §6.2))' from a seqmatch.data meta.json."""
    meta = read_json(meta_path)
    src = str(meta.get("source", "unknown"))
    stand_in = meta.get("stand_in_for")
    text = f"{src} (stand-in for {stand_in})" if stand_in else src
    max_tokens = meta.get("settings", {}).get("max_tokens")
    if max_tokens:  # translation: the length filter (paper: under 64 tokens a side)
        text += f", pairs under {max_tokens} tokens a side"
    return text


def provenance_columns(provenance: dict, meta_path) -> dict:
    """Columns appended to every table row: what produced the numbers."""
    meta = read_json(meta_path)
    sizes = meta.get("sizes", {})
    return {
        "profile": provenance["profile"],
        "model": provenance["model"],
        "data_source": data_source(meta_path),
        "data_license": "; ".join(meta.get("licenses") or ["not stated"]),
        "n_train": sizes.get("train"),
        "n_test": sizes.get("test"),
        "steps": provenance["steps"],
    }


def write_csv(df: pd.DataFrame, path) -> None:
    """Write ``df`` (no index) atomically: a half-written results/ file never appears under its final
    name (``seqmatch.io.atomic_write_text``; the parent directory is created)."""
    atomic_write_text(path, df.to_csv(index=False))


def write_text(path, text: str) -> None:
    """Write a UTF-8 text file atomically (as write_csv)."""
    atomic_write_text(path, text)


def eta_label(eta: float) -> str:
    """Column label of a noise level: 0.02 -> 'eta_0.02'."""
    return "eta_" + np.format_float_positional(float(eta), trim="-")


def paired_bootstrap(correct_a: dict, correct_b: dict, n_boot: int = 10000, seed: int = 0) -> dict:
    """Method A minus method B on the same questions, paired by seed and by question.

    ``correct_a[seed]`` and ``correct_b[seed]``: per-question 0/1 (or any score) lists of equal
    length, the same questions in the same order (the two runs of one seed evaluated on one test
    set). The difference of a seed is mean(a) − mean(b); the estimate is the mean over seeds. Its
    95 % interval is a two-level (hierarchical) bootstrap: seeds are resampled with replacement,
    then, within each drawn seed, questions (the same draw for A and B, so the pairing holds),
    so the interval holds both the seed-to-seed spread and the test-set sampling. With one seed
    it is the question-level paired bootstrap alone (and says nothing about other seeds).
    Returns mean, ci_low, ci_high, per-seed differences, their sd (ddof 1), n_seeds, n_questions.
    """
    seeds = sorted(set(correct_a) & set(correct_b))
    if not seeds:
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "per_seed": [], "sd_seeds": math.nan,
                "n_seeds": 0, "n_questions": 0}
    diffs = []
    for s in seeds:
        a, b = np.asarray(correct_a[s], dtype=float), np.asarray(correct_b[s], dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"seed {s}: {a.size} vs {b.size} questions (the runs must share a test set)")
        diffs.append(a - b)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    k = len(diffs)
    for i in range(n_boot):
        picked = rng.integers(0, k, size=k)
        boots[i] = np.mean([diffs[j][rng.integers(0, diffs[j].size, size=diffs[j].size)].mean() for j in picked])
    per_seed = [float(d.mean()) for d in diffs]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean": float(np.mean(per_seed)), "ci_low": float(lo), "ci_high": float(hi), "per_seed": per_seed,
            "sd_seeds": float(np.std(per_seed, ddof=1)) if k > 1 else math.nan, "n_seeds": k,
            "n_questions": int(min(d.size for d in diffs))}


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of per-seed values (k − 1 degrees of freedom): the seed-level
    interval that stays honest with few seeds, where resampling 3 seeds understates the spread.
    (NaN, NaN) for fewer than 2 values."""
    x = np.asarray([num(v) for v in values], dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan
    return t_interval_from(float(np.mean(x)), float(np.std(x, ddof=1)), x.size, level)


def t_interval_from(mean, sd, n, level: float = 0.95) -> tuple[float, float]:
    """The Student-t interval of ``t_interval`` from a mean, an sd (ddof 1) and a count; (NaN, NaN)
    where any is missing or n < 2."""
    from scipy import stats

    mean, sd, n = num(mean), num(sd), num(n)
    if not (math.isfinite(mean) and math.isfinite(sd) and math.isfinite(n)) or n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))
    return mean - half, mean + half

