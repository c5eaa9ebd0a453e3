"""Backspace noise augmentation (§4.2)."""

import math

import numpy as np
import pytest

from seqmatch.actions import actions_to_inputs, apply_backspaces
from seqmatch.noise import add_backspace_noise, digit_noise_ids, random_noise_ids

BOS, BKSPC, EOS = 0, 1, 2


def test_rate_region_and_labels():
    rng = np.random.default_rng(0)
    eta, start, n_seq, length = 0.1, 5, 400, 30
    noise_ids = [20, 21, 22]
    inserted = eligible = 0
    for _ in range(n_seq):
        acts = list(rng.integers(3, 19, size=length))
        noised, labels = add_backspace_noise(acts, eta=eta, bkspc_id=BKSPC, noise_ids=noise_ids,
                                             rng=rng, start=start)
        # the final state is unchanged: every noise token is backspaced at once
        assert apply_backspaces(noised, BKSPC) == [int(a) for a in acts]
        # walk the noised sequence: original steps keep their action as label; noise pairs
        # (x', <bkspc>) are labelled (next real action, <bkspc>)
        k = i = 0
        while i < len(noised):
            if noised[i] in noise_ids:
                assert k >= start, "noise before the region start"
                assert noised[i + 1] == BKSPC
                assert labels[i] == acts[k] and labels[i + 1] == BKSPC
                inserted += 1
                i += 2
                continue
            assert noised[i] == acts[k] and labels[i] == acts[k]
            i += 1
            k += 1
        eligible += length - start
    rate = inserted / eligible
    sd = math.sqrt(eta * (1 - eta) / eligible)
    assert abs(rate - eta) < 4 * sd, (rate, eta, sd)


def test_state_before_noise_is_labelled_with_the_real_next_action():
    rng = np.random.default_rng(3)
    acts = [5, 6, 7]
    noised, labels = add_backspace_noise(acts, eta=1.0, bkspc_id=BKSPC, noise_ids=[9], rng=rng)
    assert noised == [9, BKSPC, 5, 9, BKSPC, 6, 9, BKSPC, 7]
    assert labels == [5, BKSPC, 5, 6, BKSPC, 6, 7, BKSPC, 7]
    t = actions_to_inputs(noised, labels=labels, bos_id=BOS, bkspc_id=BKSPC)
    # input 0 (<bos> state) is labelled 5 though the next input is the noise token 9
    assert t.labels[0] == 5 and t.input_ids[1] == 9 and t.labels[1] == BKSPC
    assert t.input_ids[2] == BOS and t.position_ids[2] == 0  # the copy of <bos>


def test_seeded_and_eta_zero():
    acts = list(range(3, 40))
    a = add_backspace_noise(acts, eta=0.3, bkspc_id=BKSPC, noise_ids=[50, 51],
                            rng=np.random.default_rng(7))
    b = add_backspace_noise(acts, eta=0.3, bkspc_id=BKSPC, noise_ids=[50, 51],
                            rng=np.random.default_rng(7))
    assert a == b
    c = add_backspace_noise(acts, eta=0.0, bkspc_id=BKSPC, noise_ids=[50],
                            rng=np.random.default_rng(7))
    assert c == (acts, acts)
    with pytest.raises(ValueError, match="eta"):
        add_backspace_noise(acts, eta=-0.1, bkspc_id=BKSPC, noise_ids=[50], rng=np.random.default_rng(0))


def test_noise_candidates():
    assert random_noise_ids(6, [0, 1, 2, 3]) == [4, 5]
    vocab = {str(d): 10 + d for d in range(10)}
    assert digit_noise_ids(vocab.get, 7) == [10, 11, 12, 13, 14, 15, 16]
    with pytest.raises(ValueError):
        digit_noise_ids(vocab.get, 16)
