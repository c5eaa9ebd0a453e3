"""The benchmark runs end to end at a tiny size and its baselines compute the same things as ours
(timings themselves are not asserted: ratios are printed, see README)."""

import json
import subprocess
import sys

import numpy as np
import torch

from seqmatch import bench
from seqmatch.actions import actions_to_inputs


def test_naive_algorithm_a_agrees_with_actions_to_inputs():
    rng = np.random.default_rng(0)
    for _ in range(20):
        acts = [int(a) for a in rng.integers(4, 20, size=30)]
        for i in range(2, 30):  # backspaces, but never down to <bos> (as Algorithm A assumes)
            if rng.random() < 0.2 and i % 3:
                acts[i] = bench.BKSPC
        depth, ok = 0, True
        for a in acts:
            depth += -1 if a == bench.BKSPC else 1
            ok &= depth >= 1
        if not ok:
            continue
        x, p, y, m = bench.naive_algorithm_a(acts)
        t = actions_to_inputs(acts, bos_id=bench.BOS, bkspc_id=bench.BKSPC)
        assert torch.equal(t.mask(), m) and torch.equal(t.input_ids, x) and torch.equal(t.labels, y)


def test_bench_cli_tiny(tmp_path):
    args = ["--json", "--out", str(tmp_path / "bench.json"), "--vocab", "64", "--d-model", "32", "--n-layer", "1", "--n-head", "2", "--seq-len", "32",
            "--batch", "4", "--repeats", "1", "--gen-batch", "2", "--prompt-len", "4", "--new-tokens", "8",
            "--sampler-repeats", "1", "--transform-len", "64", "--transform-batch", "2", "--transform-repeats", "1"]
    out = subprocess.run([sys.executable, "-m", "seqmatch.bench", *args], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for k in ("sm_over_mle_step_time_per_token", "bkspc_sampler_over_plain_throughput",
              "hf_trainer_sm_over_sm_step_time_per_token",
              "transform_over_naive_throughput", "sm_over_mle_peak_memory"):
        assert np.isfinite(res[k]) and res[k] > 0, k
    assert 0 < res["sampler_bkspc_fraction"] < 0.5
    # --out: the same object, with each target and, by hand, whether the measured ratio meets it
    saved = json.loads((tmp_path / "bench.json").read_text())
    targets = saved.pop("targets")
    assert saved == res
    assert targets["sm_over_mle_step_time_per_token"] == {
        "op": "<=", "bound": 1.15, "met": res["sm_over_mle_step_time_per_token"] <= 1.15}
    assert targets["transform_over_naive_throughput"]["met"] == (res["transform_over_naive_throughput"] >= 10)
    assert targets["bkspc_sampler_over_plain_throughput"]["met"] == (res["bkspc_sampler_over_plain_throughput"] >= 0.9)
