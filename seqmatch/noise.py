"""Backspace noise augmentation of data trajectories (paper §4.2, App. E).

With probability ``eta`` at each position of a data sequence the *environment* inserts a noise
token x' and the expert answers with ``<bkspc>``:

    ... x_i, x_{i+1} ...   ->   ... x_i, x', <bkspc>, x_{i+1} ...

The noise is stochastic dynamics of the augmented MDP, not an action to learn: the action label in
the state ending at x_i stays x_{i+1}. The state that ends at x' is labelled ``<bkspc>``.

Two kinds of noise tokens (paper §6.1):
* random noise: x' uniform over the vocabulary minus special tokens (``random_noise_ids``);
* ground-truth noise: x' a digit 0..b-1 for a base-b arithmetic question (``digit_noise_ids``).

Noise is only inserted at positions ``>= start`` (arithmetic: after ``Solution:``), never after a
final ``<eos>``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def add_backspace_noise(
    actions: Sequence[int],
    *,
    eta: float,
    bkspc_id: int,
    noise_ids: Sequence[int],
    rng: np.random.Generator,
    start: int = 0,
    labels: Sequence[int] | None = None,
) -> tuple[list[int], list[int]]:
    """Insert ``x', <bkspc>`` before action k with probability ``eta``, for each k >= ``start``.

    Returns ``(noised_actions, labels)`` of equal length, ready for
    ``actions_to_inputs(noised_actions, labels=labels, ...)``. ``labels`` in the input (default:
    the actions) are carried through for the original steps.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if eta > 0 and len(noise_ids) == 0:
        raise ValueError("noise_ids is empty: no token to insert as noise")
    labels = list(actions if labels is None else labels)
    n = len(actions)
    start = max(int(start), 0)
    # one Bernoulli draw and one candidate draw per position, always, so that the random stream
    # does not depend on eta's outcome (same seed -> same positions for nested eta values)
    hits = rng.random(n) < eta
    picks = rng.integers(0, max(len(noise_ids), 1), size=n)
    out_a: list[int] = []
    out_l: list[int] = []
    for k in range(n):
        if k >= start and hits[k]:
            out_a += [int(noise_ids[picks[k]]), bkspc_id]
            out_l += [int(labels[k]), bkspc_id]
        out_a.append(int(actions[k]))
        out_l.append(int(labels[k]))
    return out_a, out_l


def random_noise_ids(vocab_size: int, special_ids: Sequence[int]) -> list[int]:
    """Random noise candidates: every vocabulary id except the special tokens."""
    special = set(int(s) for s in special_ids)
    return [i for i in range(vocab_size) if i not in special]


def digit_noise_ids(token_to_id, base: int) -> list[int]:
    """Ground-truth noise candidates for a base-``base`` question: the digits 0..base-1.

    ``token_to_id`` maps a one-character string to its token id (e.g. a tokenizer's
    ``convert_tokens_to_ids``); digits must be single tokens (our tokenizers split digits).
    """
    if not 2 <= base <= 10:
        raise ValueError(f"base must be in 2..10 for digit noise, got {base}")
    ids = [token_to_id(str(d)) for d in range(base)]
    if any(i is None or i < 0 for i in ids):
        raise ValueError(f"digits 0..{base - 1} are not all single tokens in this tokenizer")
    return [int(i) for i in ids]


def require_bases(rows: Sequence[dict], path: str) -> None:
    """Ground-truth noise draws digits of each row's base: a row without one (a qa task of its own
    without tasks.<task>.data.base) is an error, not base 10."""
    for n, row in enumerate(rows, 1):
        if row.get("base") is None:
            raise ValueError(f"{path}: row {n} has no 'base', and ground-truth noise inserts digits 0..b-1 of a "
                             f"row's base: set tasks.<task>.data.base (the base of the answers' numbers), or "
                             f"train with noise random")
