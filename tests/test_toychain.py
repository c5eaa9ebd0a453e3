"""Toy chain of Figure 1 / App. B: closed forms against brute-force enumeration of the n + 1
outcomes, the rollout dynamics against (1 - eps)^n, and the CLI."""

import math
from fractions import Fraction

import numpy as np
import pytest

from seqmatch import toychain as tc


def outcomes(eps: Fraction, n: int):
    """Brute force: walk the chain step by step; exact rational probabilities of the n + 1
    outcomes under data P and model Q. Outcome 'chain' = completed, ('left', k) = left at step k."""
    P, Q = {}, {}
    reach = Fraction(1)  # Q(still on the chain before step k)
    for k in range(1, n + 1):
        Q[("left", k)] = reach * eps
        P[("left", k)] = Fraction(0)
        reach *= 1 - eps
    Q["chain"] = reach
    P["chain"] = Fraction(1)
    assert sum(Q.values()) == 1 and sum(P.values()) == 1
    return P, Q


def brute(eps: Fraction, n: int):
    P, Q = outcomes(eps, n)
    kl_pq = sum(float(p) * math.log(float(p) / float(Q[x])) for x, p in P.items() if p > 0)
    kl_qp = math.inf if any(q > 0 and P[x] == 0 for x, q in Q.items()) else 0.0
    chi2_pq = sum((P[x] - Q[x]) ** 2 / Q[x] for x in P)  # exact rational
    M = {x: (P[x] + Q[x]) / 2 for x in P}
    chi2_pm = sum((P[x] - M[x]) ** 2 / M[x] for x in P if M[x] > 0)
    chi2_qm = sum((Q[x] - M[x]) ** 2 / M[x] for x in P if M[x] > 0)
    return dict(kl_pq=kl_pq, kl_qp=kl_qp, chi2=chi2_pq, chi2_pm=chi2_pm, chi2_qm=chi2_qm, stay=Q["chain"])


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20])
@pytest.mark.parametrize("eps", [Fraction(1, 1000), Fraction(1, 20), Fraction(1, 10), Fraction(3, 10)])
def test_closed_forms_equal_enumeration(n, eps):
    b = brute(eps, n)
    e = float(eps)
    assert tc.kl_forward(e, n) == pytest.approx(b["kl_pq"], rel=1e-12)
    assert tc.kl_reverse(e, n) == math.inf and b["kl_qp"] == math.inf
    assert tc.chi2(e, n) == pytest.approx(float(b["chi2"]), rel=1e-12)
    assert tc.chi2_mixture(e, n) == pytest.approx(float(b["chi2_pm"]), rel=1e-12)
    assert b["chi2_pm"] == b["chi2_qm"]  # the mixture chi^2 is symmetric
    assert tc.p_stay(e, n) == pytest.approx(float(b["stay"]), rel=1e-12)


def test_hand_values():
    # n = 2, eps = 1/2: outcomes Q = (left@1 1/2, left@2 1/4, chain 1/4)
    # KL = log 4; chi2 = (1 - 1/4)^2/(1/4) + 1/2 + 1/4 = 9/4 + 3/4 = 3; mixture = (3/4)/(5/4) = 3/5
    assert tc.kl_forward(0.5, 2) == pytest.approx(math.log(4))
    assert tc.chi2(0.5, 2) == pytest.approx(3.0)
    assert tc.chi2_mixture(0.5, 2) == pytest.approx(0.6)
    assert tc.p_stay(0.5, 2) == pytest.approx(0.25)


def test_zero_error_and_vectorised():
    eps = np.array([0.0, 0.1, 0.2])
    assert tc.kl_reverse(eps, 5).tolist() == [0.0, math.inf, math.inf]
    assert tc.kl_forward(eps, 5)[0] == 0 and tc.chi2(eps, 5)[0] == 0 and tc.chi2_mixture(eps, 5)[0] == 0
    assert tc.chi2(eps, 5).shape == (3,)


def test_kl_linear_chi2_exponential_in_n():
    """The paper's point: KL grows linearly in n while chi^2 tracks 1 / P(stay)."""
    e = 0.1
    assert tc.kl_forward(e, 40) == pytest.approx(2 * tc.kl_forward(e, 20))
    assert tc.chi2(e, 40) + 1 == pytest.approx((tc.chi2(e, 20) + 1) ** 2)


def test_state_rows():
    s = tc.ChainStates(3)
    C, X = tc.C, tc.X
    assert s.key([]) == s.on(0) == 0
    assert s.key([C, C, C]) == s.on(3)
    assert s.key([C, X]) == s.off(1)
    assert s.key([X]) == s.off(0)
    assert s.key([C, X, C]) == s.junk
    assert s.key([C, C, C, C]) == s.junk
    assert s.key([X, X]) == s.junk
    assert s.key([C, C, C, tc.EOS]) == s.final
    assert s.key([C, tc.EOS]) == s.junk
    assert len({s.on(k) for k in range(4)} | {s.off(k) for k in range(4)} | {s.final, s.junk}) == s.n_rows
    # c x <bkspc> c: states [], [c], [c x], [c], [c c]
    assert s.keys_along([C, X, tc.BKSPC, C]) == [s.on(0), s.on(1), s.off(1), s.on(1), s.on(2)]


def test_rollout_without_backspace_stays_with_prob_one_minus_eps_to_the_n():
    """A policy that always continues (then <eos> at the end) under the eps dynamics: the
    Monte-Carlo fraction in distribution matches (1 - eps)^n within 4 standard errors."""
    n, eps, N = 6, 0.1, 4000
    s = tc.ChainStates(n)
    probs = np.zeros((s.n_rows, tc.N_ACTIONS))
    probs[:, tc.C] = 1.0
    probs[s.on(n)] = [0, 0, 1, 0]  # <eos> at the end of the chain
    rng = np.random.default_rng(0)
    ro = tc.rollouts(probs, s, eps=eps, rng=rng, max_len=3 * (n + 1), count=N)
    frac = np.mean([tc.in_distribution(a, n) for a in ro])
    exact = (1 - eps) ** n
    assert abs(frac - exact) < 4 * math.sqrt(exact * (1 - exact) / N)


def test_rollout_backspace_policy_recovers():
    """With <bkspc> in every off-chain state, every rollout ends in distribution."""
    n = 5
    s = tc.ChainStates(n)
    probs = np.zeros((s.n_rows, tc.N_ACTIONS))
    probs[:, tc.C] = 1.0
    probs[s.on(n)] = [0, 0, 1, 0]
    for k in range(n + 1):
        probs[s.off(k)] = [0, 0, 0, 1]
    rng = np.random.default_rng(1)
    ro = tc.rollouts(probs, s, eps=0.3, rng=rng, max_len=200, count=300)
    assert all(tc.in_distribution(a, n) for a in ro)
    assert any(tc.BKSPC in a for a in ro)


def test_cli_exact_only(tmp_path):
    pdf, png, js = tmp_path / "f1.pdf", tmp_path / "f1.png", tmp_path / "f1.json"
    tc.main(["--out-pdf", str(pdf), "--out-png", str(png), "--out-json", str(js), "--n", "5", "10",
             "--empirical-steps", "0"])
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    import json

    d = json.loads(js.read_text())
    assert d["exact"]["10"]["kl_reverse"] == "inf"
    assert d["exact"]["5"]["p_stay"][2] == pytest.approx(0.9**5)


def test_empirical_sm_learns_to_backspace_mle_cannot():
    """SM without a single <bkspc> in its data learns to backspace out of the off-chain states
    from its own rollouts; MLE stays on the chain only when it never slips."""
    cfg = tc.EmpiricalConfig(n=6, steps=250, eval_rollouts=500, eval_eps=(0.0, 0.1, 0.2), seed=0)
    variants = (("MLE", "mle", 0.0), ("SM eta=0", "sm", 0.0))
    r = tc.run_empirical(cfg, variants)
    mle, sm = r.policies
    assert mle.p_bkspc_offchain == [] and mle.p_bkspc_onchain == 0.0
    for e, m in zip(r.eval_eps, mle.p_stay):
        exact = (1 - e) ** cfg.n
        assert abs(m - exact) < 4 * math.sqrt(exact * (1 - exact) / cfg.eval_rollouts) + 0.03
    # before the SM loss starts (BC on clean data = MLE with a <bkspc> column) the off-chain rows
    # are untrained: uniform over the 4 actions
    assert sm.history["p_bkspc_off"][0] == pytest.approx(0.25, abs=0.02)
    assert min(sm.p_bkspc_offchain) > 0.8
    assert sm.p_bkspc_onchain < 0.1
    assert sm.p_stay[-1] > 0.8 > mle.p_stay[-1] + 0.4
