"""FIFO replay buffer of model rollouts (§4.1, App. E) and the sampling interval it implies.

The paper keeps the last 1,000 generated sequences and fixes how many times, on average, each one
is used in training before it is replaced (K = 8); the sampling interval (training steps between
generation rounds) follows from K and the batch sizes:

* each generation round adds G = ``gen_batch_size`` sequences (the oldest G leave once full);
* each training step draws R = ``model_rows_per_step`` sequences uniformly from the C =
  ``capacity`` in the buffer, so a given sequence is drawn R / C times per step on average;
* in steady state a sequence lives C / G rounds = I * C / G steps, so it is used
  K = I * (C / G) * (R / C) = I * R / G times.

Hence ``I = K * G / R`` (the capacity cancels), rounded to the nearest integer >= 1; the
realised average is then ``I * R / G``. Example: K = 8, G = 64, R = 32 -> I = 16 (Table 3's
"16 grad steps per sample"). The average is over every generated sequence; when G > C a round
pushes G - C of its own sequences out unused (wasted generation), and the C kept ones are drawn
K * G / C times each; keep G <= C.

Items are opaque, JSON-able records (e.g. ``{"actions": [...], "prompt_len": 12}``); the buffer
counts how often each was drawn (``uses``), so the realised reuse can be logged.
"""

from __future__ import annotations

import random
import warnings
from collections import deque
from typing import Any, Iterable

import numpy as np

__all__ = ["ReplayBuffer", "sampling_interval"]


def sampling_interval(*, capacity: int, reuse: float, gen_batch_size: int, model_rows_per_step: int) -> int:
    """Training steps between generation rounds so that each buffered sequence is drawn ``reuse``
    times on average before it is replaced: ``round(reuse * gen_batch_size / model_rows_per_step)``,
    at least 1 (derivation in the module docstring; ``capacity`` cancels out in steady state and
    only enters the validity check)."""
    if capacity < 1 or gen_batch_size < 1 or model_rows_per_step < 1:
        raise ValueError("capacity, gen_batch_size and model_rows_per_step must be >= 1")
    if reuse <= 0:
        raise ValueError("reuse must be > 0")
    if gen_batch_size > capacity:
        warnings.warn(
            f"gen_batch_size={gen_batch_size} > capacity={capacity}: each generation round pushes "
            f"{gen_batch_size - capacity} of its own sequences out unused",
            stacklevel=2,
        )
    return max(1, int(round(reuse * gen_batch_size / model_rows_per_step)))


class ReplayBuffer:
    """First in, first out: once ``capacity`` items are held, adding one drops the oldest."""

    def __init__(self, capacity: int = 1000):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = int(capacity)
        self._items: deque = deque()
        self._uses: deque = deque()
        self.total_added = 0
        # uses of the items that were evicted (for the realised reuse): count and sum
        self.evicted = 0
        self.evicted_uses = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, items: Iterable[Any]) -> None:
        for it in items:
            if len(self._items) == self.capacity:
                self._items.popleft()
                self.evicted_uses += self._uses.popleft()
                self.evicted += 1
            self._items.append(it)
            self._uses.append(0)
            self.total_added += 1

    def items(self) -> list[Any]:
        """The held items, oldest first."""
        return list(self._items)

    def uses(self) -> list[int]:
        """Times each held item has been drawn, oldest first."""
        return list(self._uses)

    def mean_reuse(self) -> float:
        """Average number of draws per evicted item (NaN before the first eviction)."""
        return self.evicted_uses / self.evicted if self.evicted else float("nan")

    def sample(self, n: int, rng: np.random.Generator | random.Random) -> list[Any]:
        """``n`` items drawn uniformly: without replacement when ``n <= len(self)``, otherwise with
        replacement. ``rng``: a numpy Generator or a ``random.Random``."""
        m = len(self._items)
        if m == 0:
            raise ValueError("sample from an empty replay buffer")
        if n < 0:
            raise ValueError("n must be >= 0")
        replace = n > m
        if isinstance(rng, np.random.Generator):
            idx = [int(i) for i in rng.choice(m, size=n, replace=replace)]
        elif isinstance(rng, random.Random):
            idx = [rng.randrange(m) for _ in range(n)] if replace else rng.sample(range(m), n)
        else:
            raise TypeError(f"rng must be a numpy Generator or random.Random, got {type(rng).__name__}")
        for i in idx:
            self._uses[i] += 1
        return [self._items[i] for i in idx]

    def state_dict(self) -> dict[str, Any]:
        """Plain python data (JSON-able when the items are)."""
        return {
            "capacity": self.capacity,
            "items": list(self._items),
            "uses": list(self._uses),
            "total_added": self.total_added,
            "evicted": self.evicted,
            "evicted_uses": self.evicted_uses,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        missing = [k for k in ("capacity", "items", "uses", "total_added", "evicted", "evicted_uses") if k not in d]
        if missing:
            raise ValueError(f"replay state lacks {', '.join(missing)} (not written by ReplayBuffer.state_dict)")
        items, uses = list(d["items"]), list(d["uses"])
        if len(items) != len(uses):
            raise ValueError("replay state: items and uses differ in length")
        cap = int(d["capacity"])
        if len(items) > cap:
            raise ValueError("replay state holds more items than its capacity")
        self.capacity = cap
        self._items = deque(items)
        self._uses = deque(int(u) for u in uses)
        self.total_added = int(d["total_added"])
        self.evicted = int(d["evicted"])
        self.evicted_uses = int(d["evicted_uses"])
