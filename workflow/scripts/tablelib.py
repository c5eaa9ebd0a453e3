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
