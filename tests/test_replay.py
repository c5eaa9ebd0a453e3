"""seqmatch.replay: FIFO order, capacity, reuse K over a simulated training run, state round trip."""

import json
import random
import warnings

import numpy as np
import pytest

from seqmatch.replay import ReplayBuffer, sampling_interval


def test_fifo_and_capacity():
    buf = ReplayBuffer(capacity=10)
    assert ReplayBuffer().capacity == 1000
    buf.add([{"id": i} for i in range(4)])
    assert len(buf) == 4 and [x["id"] for x in buf.items()] == [0, 1, 2, 3]
    for start in range(4, 25, 3):
        buf.add([{"id": i} for i in range(start, start + 3)])
        assert len(buf) <= 10
    ids = [x["id"] for x in buf.items()]
    assert ids == list(range(15, 25))  # the 10 newest, oldest first
    assert buf.total_added == 25 and buf.evicted == 15


@pytest.mark.parametrize("rng", [np.random.default_rng(0), random.Random(0)])
def test_sample_uniform_without_then_with_replacement(rng):
    buf = ReplayBuffer(capacity=50)
    buf.add(range(50))
    counts = np.zeros(50)
    for _ in range(400):
        draw = buf.sample(10, rng)
        assert len(draw) == 10 and len(set(draw)) == 10  # no repeats within a batch
        counts[draw] += 1
    assert counts.sum() == 4000 and counts.min() > 40 and counts.max() < 125  # about 80 each
    assert buf.uses() == [int(c) for c in counts]
    small = ReplayBuffer(capacity=5)
    small.add([7, 8])
    assert sorted(set(small.sample(6, rng))) == [7, 8]
    with pytest.raises(ValueError):
        ReplayBuffer().sample(1, rng)


def test_sampling_interval_formula():
    # paper-like: K = 8, generation batch 64, 32 rows per step -> one round every 16 steps
    assert sampling_interval(capacity=1000, reuse=8, gen_batch_size=64, model_rows_per_step=32) == 16
    assert sampling_interval(capacity=1000, reuse=8, gen_batch_size=128, model_rows_per_step=32) == 32
    assert sampling_interval(capacity=1000, reuse=8, gen_batch_size=2, model_rows_per_step=32) == 1
    # the capacity cancels out of the steady state
    with pytest.warns(UserWarning, match="unused"):
        assert sampling_interval(capacity=50, reuse=4, gen_batch_size=80, model_rows_per_step=10) == 32
    with pytest.raises(ValueError):
        sampling_interval(capacity=0, reuse=8, gen_batch_size=1, model_rows_per_step=1)


def simulate(capacity, reuse, gen, rows, rounds, seed=0, warmup_rounds=None):
    """Generation rounds every `interval` steps; return the mean number of draws of the sequences
    evicted after the buffer first became full (their whole life was in a full buffer). With
    gen > capacity, part of each round is pushed out unused and counts with 0 draws."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interval = sampling_interval(capacity=capacity, reuse=reuse, gen_batch_size=gen, model_rows_per_step=rows)
    buf = ReplayBuffer(capacity=capacity)
    rng = np.random.default_rng(seed)
    warmup_rounds = warmup_rounds or 2 * int(np.ceil(capacity / gen)) + 1
    n = 0
    base = None
    for r in range(rounds):
        buf.add([{"id": n + i} for i in range(gen)])
        n += gen
        if r == warmup_rounds:
            base = (buf.evicted, buf.evicted_uses)
        for _ in range(interval):
            buf.sample(rows, rng)
    ev, uses = buf.evicted - base[0], buf.evicted_uses - base[1]
    assert ev > 5 * capacity
    return uses / ev, interval


@pytest.mark.parametrize(
    "capacity,reuse,gen,rows",
    [(100, 8, 20, 10), (200, 8, 64, 32), (100, 3, 25, 5), (50, 4, 80, 10)],
)
def test_reuse_holds_on_average_in_a_simulated_run(capacity, reuse, gen, rows):
    mean, interval = simulate(capacity, reuse, gen, rows, rounds=400 if gen < capacity else 150)
    assert abs(mean - reuse) < 0.25, (mean, interval)


def test_reuse_with_rounding():
    # K * G / R = 8 * 12 / 10 = 9.6 -> interval 10: realised reuse is 10 * 10 / 12 = 8.33
    mean, interval = simulate(120, 8, 12, 10, rounds=600)
    assert interval == 10
    assert abs(mean - interval * 10 / 12) < 0.25


def test_state_round_trip_json():
    buf = ReplayBuffer(capacity=6)
    rng = np.random.default_rng(3)
    buf.add([{"actions": [1, 2, i], "prompt_len": 1} for i in range(9)])
    buf.sample(4, rng)
    sd = json.loads(json.dumps(buf.state_dict()))
    other = ReplayBuffer(capacity=1)
    other.load_state_dict(sd)
    assert other.capacity == 6 and len(other) == 6
    assert other.items() == buf.items() and other.uses() == buf.uses()
    assert other.state_dict() == buf.state_dict()
    # the restored buffer behaves like the original one
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    assert buf.sample(3, r1) == other.sample(3, r2)
    buf.add([{"actions": [5], "prompt_len": 0}])
    other.add([{"actions": [5], "prompt_len": 0}])
    assert other.state_dict() == buf.state_dict()


def test_state_without_a_key_is_one_error_naming_it():
    sd = ReplayBuffer(capacity=2).state_dict()
    del sd["uses"], sd["evicted"]
    with pytest.raises(ValueError, match="replay state lacks uses, evicted"):
        ReplayBuffer(capacity=1).load_state_dict(sd)
