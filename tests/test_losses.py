"""Training objectives (issue 3): eq. 4 and its identities, BC/MLE, unlikelihood, schedules.

Expected values are derived independently of seqmatch.losses: by hand with python floats, by
brute-force loops, or from the paper's identities (App. C.3 telescoping, App. D.2 KL → MLE).
"""

import math

import pytest
import torch

from seqmatch.actions import IGNORE_INDEX, actions_to_inputs, collate
from seqmatch.losses import (
    DEFAULT_LOGIT_BOUND,
    DIVERGENCES,
    beta_at,
    bc_loss,
    bound_logits,
    initial_value_residue,
    make_lr_scheduler,
    mle_loss,
    phi_js,
    sequence_match_loss,
    sequence_match_loss_from_batch,
    unlikelihood_loss,
)

DIV_KW = ("state_mask", "terminal", "last_index", "is_model", "prompt_len")


def kw(batch):
    return {k: getattr(batch, k) for k in DIV_KW}


def lse(z):
    m = max(z)
    return m + math.log(sum(math.exp(v - m) for v in z))


X0 = -math.log(2.0) + 0.01  # App. G.1 switch point of the JS continuation


def hand_phi(x, divergence):
    if divergence in ("chi2", "chi2_mix"):
        return x - x * x / 4.0
    if divergence == "kl":
        return -math.exp(-x)
    if divergence == "js":
        if x >= X0:
            return math.log(2.0 - math.exp(-x))
        # tangent line at X0: φ'(x) = e^{-x} / (2 - e^{-x})
        return math.log(2.0 - math.exp(-X0)) + (x - X0) * math.exp(-X0) / (2.0 - math.exp(-X0))
    raise AssertionError(divergence)


# --------------------------------------------------------------------------------------------
# eq. 4 by hand
# --------------------------------------------------------------------------------------------

# actions: X (a token), EOS, <bkspc>: a vocabulary of 2 + <bkspc>; BOS/PAD are input ids only
X, EOS, BK = 0, 1, 2
BOS, PAD = 3, 4

# one data row (X <bkspc> EOS: 3 actions, one backspace, terminal) and one model row
# (X EOS with a 1-action prompt, terminal), right-padded to 4 inputs
D_LOGITS = [[0.3, -1.2, 0.8], [1.5, 0.2, -0.4], [-0.7, 0.9, 0.1], [2.0, -0.5, 0.6]]
U_LOGITS = [[0.3, -1.2, 0.8], [-0.2, 1.1, 0.4], [0.5, 0.7, -1.3], [7.0, 7.0, 7.0]]  # last: pad


def hand_batch():
    data = actions_to_inputs([X, BK, EOS], bos_id=BOS, bkspc_id=BK, eos_id=EOS)
    model = actions_to_inputs([X, EOS], bos_id=BOS, bkspc_id=BK, eos_id=EOS, prompt_len=1)
    return collate([data, model], pad_id=PAD, is_model=[False, True])


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("initial_value", ["data", "plugin"])
def test_eq4_by_hand(divergence, initial_value):
    a, g = 0.5, 0.9
    D, U = D_LOGITS, U_LOGITS
    Vd = [lse(z) for z in D]
    Vu = [lse(z) for z in U[:3]]
    f = lambda x: hand_phi(x, divergence)  # noqa: E731

    # data row: actions X (state 0), <bkspc> (state 1), EOS (state 2); final state N = 3
    phi_term = (g**0 / a * f(a * D[0][X] - g * a * Vd[1])
                + g**1 / a * f(a * D[1][BK] - g * a * Vd[2])
                + g**2 / a * f(a * D[2][EOS] - g * a * Vd[3]))
    value_data = -(g**0 / 2 * (Vd[0] - g * Vd[1]) + g**1 / 2 * (Vd[1] - g * Vd[2])
                   + g**2 / 2 * (Vd[2] - g * Vd[3]))
    term_data = g**3 / (a * (1 - g)) * f(a * (1 - g) * Vd[3]) - g**3 / 2 * Vd[3]
    # model row: prompt action X (state 0), model action EOS (state 1); final state M = 2
    value_model = -(g**0 / 2 * (Vu[0] - g * Vu[1]) + g**1 / 2 * (Vu[1] - g * Vu[2]))
    term_model = -(g**2) / 2 * Vu[2]
    reg = 0.0
    if divergence == "chi2_mix":  # only the model action after the prompt (state 1)
        reg = -(g**1) / a * 0.25 * (a * U[1][EOS] - g * a * Vu[2]) ** 2
    J = phi_term + value_data + term_data + value_model + term_model + reg
    if initial_value == "data":
        # the model row's value term taken at the data row's initial state: −½V(s_0); here both
        # rows start in the same <bos> state with the same logits, so J is the same number
        assert value_model + term_model == pytest.approx(-0.5 * Vd[0], rel=1e-12)
        value_model, term_model = -0.5 * Vd[0], 0.0

    batch = hand_batch()
    assert batch.labels.tolist() == [[X, BK, EOS, IGNORE_INDEX], [X, EOS, IGNORE_INDEX, IGNORE_INDEX]]
    logits = torch.tensor([D, U], dtype=torch.float64)
    out = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=a, gamma=g,
                              divergence=divergence, logit_bound=None, initial_value=initial_value)
    # the loss is per token: −J over the data row's 3 actions (BC's scale)
    assert out["loss"].item() == pytest.approx(-J / 3, rel=1e-12, abs=1e-12)
    assert out["tokens_per_row"].item() == 3
    assert out["total"].item() == pytest.approx(J, rel=1e-12, abs=1e-12)
    assert out["phi"].item() == pytest.approx(phi_term, rel=1e-12)
    assert out["value_data"].item() == pytest.approx(value_data, rel=1e-12)
    assert out["value_model"].item() == pytest.approx(value_model + term_model, rel=1e-12)
    assert out["terminal"].item() == pytest.approx(term_data, rel=1e-12)
    assert out["v0_data"].item() == pytest.approx(Vd[0], rel=1e-12)
    assert out["v0_model"].item() == pytest.approx(Vu[0], rel=1e-12)
    assert out["v_final_data"].item() == pytest.approx(Vd[3], rel=1e-12)  # final states N = 3, M = 2
    assert out["v_final_model"].item() == pytest.approx(Vu[2], rel=1e-12)
    assert out["residue"].item() == pytest.approx(0.5 * (Vd[0] - Vu[0]), abs=1e-15)
    assert out["regularizer"].item() == pytest.approx(reg, rel=1e-12, abs=1e-15)
    assert out["mean_v"].item() == pytest.approx(sum(Vd + Vu) / 7, rel=1e-12)
    # the logged parts add up to the total
    parts = sum(out[k] for k in ("phi", "value_data", "value_model", "terminal", "regularizer"))
    assert parts.item() == pytest.approx(out["total"].item(), rel=1e-12)
    # the Batch wrapper is the same function
    out2 = sequence_match_loss_from_batch(logits, batch, alpha=a, gamma=g, divergence=divergence,
                                          logit_bound=None, initial_value=initial_value)
    assert out2["loss"].item() == out["loss"].item()
    per_seq = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=a, gamma=g,
                                  divergence=divergence, logit_bound=None, per_token=False,
                                  initial_value=initial_value)
    assert per_seq["loss"].item() == pytest.approx(-J, rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------------------------
# A small parameterised "model": logits depend on the input token and position only, so rows
# that share a state (the <bos> state) share its logits, as with a real network.
# --------------------------------------------------------------------------------------------

T0, T1, T2, T3, E, B_ = 0, 1, 2, 3, 4, 5  # tokens T0..T3, EOS, <bkspc>: 6 actions
IBOS, IPAD = 6, 7  # input ids only


def toy_batch(pad_to=None):
    # data 1: T0 [noise T3, <bkspc>] T1 T2 EOS; the state before the noise keeps its label T1
    d1 = actions_to_inputs([T0, T3, B_, T1, T2, E], labels=[T0, T1, B_, T1, T2, E],
                           bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=1)
    d2 = actions_to_inputs([T2, T2, T1, E], bos_id=IBOS, bkspc_id=B_, eos_id=E)
    m1 = actions_to_inputs([T0, T1, B_, T3, T3, E], bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=2)
    m2 = actions_to_inputs([T3, E], bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=1)
    return collate([d1, d2, m1, m2], pad_id=IPAD, is_model=[False, False, True, True], pad_to=pad_to)


def toy_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(8, 6, generator=g, dtype=torch.float64).requires_grad_()
    P = (0.5 * torch.randn(16, 6, generator=g, dtype=torch.float64)).requires_grad_()
    return W, P


def toy_logits(batch, W, P):
    return W[batch.input_ids] + P[torch.arange(batch.input_ids.shape[1])]


def test_kl_small_alpha_is_discounted_mle():
    """App. D.2: with φ = −e^{−x} and α → 0, ∇J = ∇ Σ_t γ^t log p(a_t|s_t) over the data rows;
    the loss, per token, is that sum over the number of data actions."""
    gamma = 0.9
    batch = toy_batch()
    W, P = toy_params()
    out = sequence_match_loss(toy_logits(batch, W, P), batch.labels, **kw(batch), alpha=1e-4,
                              gamma=gamma, divergence="kl")
    g_sm = torch.autograd.grad(out["loss"], (W, P))

    logits = toy_logits(batch, W, P)
    data_rows = [b for b in range(4) if not batch.is_model[b]]
    mle = 0.0
    for b in data_rows:  # brute force: mean over data rows of Σ_t γ^t log p(a_t|s_t)
        for t in range(int(batch.last_index[b])):
            a = int(batch.labels[b, t])
            mle = mle + gamma**t * torch.log_softmax(logits[b, t], -1)[a]
    n_actions = sum(int(batch.last_index[b]) for b in data_rows)  # every data state is labelled
    mle = mle / n_actions  # per token: mean over data rows / mean actions per data row
    g_mle = torch.autograd.grad(-mle, (W, P))

    for gs, gm in zip(g_sm, g_mle):
        rel = (gs - gm).norm() / gm.norm()
        assert rel < 1e-3, rel
    # and it is not trivially so: a different discount breaks the identity
    out = sequence_match_loss(toy_logits(batch, W, P), batch.labels, **kw(batch), alpha=1e-4,
                              gamma=0.8, divergence="kl")
    g_other = torch.autograd.grad(out["loss"], (W, P))
    assert (g_other[0] - g_mle[0]).norm() / g_mle[0].norm() > 1e-2


def t_phi(x, divergence):
    """φ on a torch scalar, written out from App. D (JS with App. G.1's tangent below X0)."""
    if divergence in ("chi2", "chi2_mix"):
        return x - x * x / 4.0
    if divergence == "kl":
        return -torch.exp(-x)
    if x.item() >= X0:
        return torch.log(2.0 - torch.exp(-x))
    return math.log(2.0 - math.exp(-X0)) + (x - X0) * math.exp(-X0) / (2.0 - math.exp(-X0))


def eq4_brute_force(logits, batch, alpha, gamma, divergence, mask_prompt, per_token=True,
                    initial_value="plugin"):
    """−J of eq. 4 by explicit loops, one row and one state at a time.

    Each row's episode starts at S (0, or the prompt end with mask_prompt) with discount
    γ^(i−S); every model sequence has −γ^M/2 V(u_M), a data sequence its terminal terms when it
    ended; chi2_mix adds −γ^i (1/α)(1/4) x² per model action after the prompt. J = mean over
    data rows + mean over model rows; per token: divided by the mean action count of data rows.
    ``initial_value="data"``: a model row keeps only its regulariser terms, and J has
    −½ × the mean over data rows of V(s_S) in place of the model rows' value terms.
    """
    data_sums, model_sums, n_actions, data_v0 = [], [], 0, []
    for b in range(logits.shape[0]):
        N, P = int(batch.last_index[b]), int(batch.prompt_len[b])
        S = min(P, N) if mask_prompt else 0
        V = [torch.logsumexp(logits[b, i], -1) for i in range(N + 1)]
        total = 0.0
        own_value = not (batch.is_model[b] and initial_value == "data")
        if not batch.is_model[b]:
            data_v0.append(V[S])
        for i in range(S, N):
            g_i = gamma ** (i - S)
            if own_value:
                total = total - g_i / 2 * (V[i] - gamma * V[i + 1])
            a = int(batch.labels[b, i])
            if a == IGNORE_INDEX:
                continue
            x = alpha * logits[b, i, a] - gamma * alpha * V[i + 1]
            if not batch.is_model[b]:
                total = total + g_i / alpha * t_phi(x, divergence)
                n_actions += 1
            elif divergence == "chi2_mix" and i >= P:
                total = total - g_i / alpha * 0.25 * x * x
        g_N = gamma ** (N - S)
        if batch.is_model[b]:
            model_sums.append(total - g_N / 2 * V[N] if own_value else total)
        else:
            if batch.terminal[b]:
                c = alpha * (1 - gamma)
                total = total + g_N / c * t_phi(c * V[N], divergence) - g_N / 2 * V[N]
            data_sums.append(total)
    J = sum(data_sums) / len(data_sums) + sum(model_sums) / len(model_sums)
    if initial_value == "data":
        J = J - 0.5 * sum(data_v0) / len(data_v0)
    return -J / (n_actions / len(data_sums)) if per_token else -J


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("mask_prompt", [False, True])
@pytest.mark.parametrize("finished", [True, False])
@pytest.mark.parametrize("initial_value", ["data", "plugin"])
def test_eq4_matches_brute_force(divergence, mask_prompt, finished, initial_value):
    """Values and gradients of the vectorised loss against eq. 4 looped state by state, with
    prompts (data and model rows), noise states, and rollouts that did or did not reach <eos>;
    for the estimator as implemented (model rows' value term at the data rows' initial states)
    and for eq. 4's plug-in form."""
    batch = toy_batch()
    batch.terminal[2:] = finished
    logits = leaf_logits(batch, seed=11, scale=1.5)
    alpha, gamma = 0.4, 0.85
    for per_token in (True, False):
        got = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=alpha, gamma=gamma,
                                  divergence=divergence, logit_bound=None, mask_prompt=mask_prompt,
                                  per_token=per_token, initial_value=initial_value)["loss"]
        want = eq4_brute_force(logits, batch, alpha, gamma, divergence, mask_prompt, per_token,
                               initial_value)
        assert got.item() == pytest.approx(want.item(), rel=1e-12, abs=1e-12)
        (g_got,) = torch.autograd.grad(got, logits)
        (g_want,) = torch.autograd.grad(want, logits)
        assert torch.allclose(g_got, g_want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_mask_prompt_trains_no_prompt_state(divergence):
    """With mask_prompt the prompt is the episode's initial state: no term of eq. 4 reaches the
    logits of the prompt states, in data rows or model rows; the states after it do learn."""
    batch = toy_batch()
    assert [int(p) for p in batch.prompt_len] == [1, 0, 2, 1]
    logits = leaf_logits(batch, seed=2)
    for initial_value in ("data", "plugin"):
        out = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.3, gamma=0.9,
                                  divergence=divergence, mask_prompt=True, initial_value=initial_value)
        (grad,) = torch.autograd.grad(out["loss"], logits)
        for b in range(4):
            P = int(batch.prompt_len[b])
            assert torch.equal(grad[b, :P], torch.zeros_like(grad[b, :P])), b
            if batch.is_model[b] and initial_value == "data" and divergence != "chi2_mix":
                # the model row's value term is taken at the data rows: nothing else reaches it
                assert torch.equal(grad[b], torch.zeros_like(grad[b])), b
            else:
                assert grad[b, P].abs().sum() > 0, (b, initial_value)
    # without it the prompt states are trained (the data row's φ term at its prompt state)
    out = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.3, gamma=0.9,
                              divergence=divergence)
    (grad,) = torch.autograd.grad(out["loss"], logits)
    assert grad[0, 0].abs().sum() > 0


def test_sm_and_bc_on_one_scale():
    """In β L_BC + (1 − β) L_SM both terms are per token: in the KL limit (α → 0, γ → 1) the SM
    loss's gradient is BC's, on rows of different lengths, so β weighs like for like."""
    batch = toy_batch()
    W, P = toy_params(seed=4)
    sm = sequence_match_loss(toy_logits(batch, W, P), batch.labels, **kw(batch), alpha=1e-5,
                             gamma=1 - 1e-5, divergence="kl")
    g_sm = torch.autograd.grad(sm["loss"], (W, P))
    data = ~batch.is_model
    bc = bc_loss(toy_logits(batch, W, P)[data], batch.labels[data])
    g_bc = torch.autograd.grad(bc, (W, P))
    for gs, gb in zip(g_sm, g_bc):
        assert (gs - gb).norm() / gb.norm() < 1e-3
    # n̄: 6 actions (noise and <bkspc> included) and 4 actions in the two data rows
    assert sm["tokens_per_row"].item() == pytest.approx((6 + 4) / 2)


# --------------------------------------------------------------------------------------------
# The initial-state residue: data rows and rollouts that start from different prompts
# --------------------------------------------------------------------------------------------


def prompted_batch(shared: bool):
    """Two data rows and two model rows with prompts (mask_prompt: each row starts after its
    prompt). ``shared``: each model row starts from a data row's prompt; else from other prompts,
    so that V at the rows' initial states differ."""
    d1 = actions_to_inputs([T0, T1, T3, B_, T2, E], labels=[T0, T1, T2, B_, T2, E],
                           bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=2)
    d2 = actions_to_inputs([T2, T1, T1, E], bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=1)
    if shared:
        m1 = actions_to_inputs([T0, T1, T3, E], bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=2)
        m2 = actions_to_inputs([T2, T0, B_, T3, E], bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=1)
    else:
        m1 = actions_to_inputs([T3, T3, T0, E], bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=3)
        m2 = actions_to_inputs([T1, T0, B_, T3, E], bos_id=IBOS, bkspc_id=B_, eos_id=E, prompt_len=1)
    return collate([d1, d2, m1, m2], pad_id=IPAD, is_model=[False, False, True, True])


def kl_limit_gap(batch, eps, initial_value, seed=4):
    """Relative distance of the SM gradient (KL, α = ε, γ = 1 − ε) from BC's, on the toy model."""
    W, P = toy_params(seed=seed)
    sm = sequence_match_loss(toy_logits(batch, W, P), batch.labels, **kw(batch), alpha=eps,
                             gamma=1 - eps, divergence="kl", mask_prompt=True,
                             initial_value=initial_value)
    g_sm = torch.cat([g.flatten() for g in torch.autograd.grad(sm["loss"], (W, P))])
    data = ~batch.is_model
    bc = bc_loss(toy_logits(batch, W, P)[data], batch.labels[data], prompt_len=batch.prompt_len[data],
                 mask_prompt=True)
    g_bc = torch.cat([g.flatten() for g in torch.autograd.grad(bc, (W, P))])
    return ((g_sm - g_bc).norm() / g_bc.norm()).item()


@pytest.mark.parametrize("shared", [True, False])
def test_kl_limit_reaches_bc_whatever_the_prompts(shared):
    """App. D.2 with mask_prompt: as α = 1 − γ = ε → 0 the SM gradient tends to BC's, the gap
    falling linearly in ε, with model rows that start from the data rows' prompts or from others.
    eq. 4's plug-in form gets there only when the prompts are shared: otherwise the residue
    ½∇(V(s_S) − V(u_S)) stays in the gradient at every ε."""
    batch = prompted_batch(shared)
    W, P = toy_params(seed=4)
    V = torch.logsumexp(toy_logits(batch, W, P).detach(), -1)
    S = batch.prompt_len
    v_start = [V[b, int(S[b])].item() for b in range(4)]
    if shared:  # the same states, the same logits
        assert v_start[2] == pytest.approx(v_start[0]) and v_start[3] == pytest.approx(v_start[1])
    else:
        assert abs(sum(v_start[:2]) - sum(v_start[2:])) > 0.05
    gaps = [kl_limit_gap(batch, eps, "data") for eps in (1e-2, 1e-3, 1e-4)]
    assert gaps[2] < 1e-3, gaps
    for coarse, fine in zip(gaps, gaps[1:]):  # linear: ten times smaller per decade
        assert 7 < coarse / fine < 13, gaps
    plugin = [kl_limit_gap(batch, eps, "plugin") for eps in (1e-2, 1e-3, 1e-4)]
    if shared:
        assert plugin == pytest.approx(gaps, rel=1e-6)
    else:
        assert min(plugin) > 0.05 and plugin[2] == pytest.approx(plugin[1], rel=1e-2), plugin


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("shared", [True, False])
def test_initial_value_residue_is_zero_in_every_batch(divergence, shared):
    """With the default estimator the model rows' logits reach the loss only through the
    chi2_mix regulariser: the initial-state residue is exactly 0 in the batch (not on average),
    and the plug-in J exceeds the estimate by exactly ½(mean V(s_S) − mean V(u_S))."""
    batch = prompted_batch(shared)
    logits = leaf_logits(batch, seed=7, scale=1.5)
    args = dict(alpha=0.3, gamma=0.9, divergence=divergence, mask_prompt=True, logit_bound=None)
    est = sequence_match_loss(logits, batch.labels, **kw(batch), **args)
    (grad,) = torch.autograd.grad(est["loss"], logits)
    model = batch.is_model
    if divergence != "chi2_mix":
        assert torch.equal(grad[model], torch.zeros_like(grad[model]))
    else:  # exactly the regulariser's gradient, nothing of V(u_S)
        reg = 0.0  # brute force: −Σ_{P<=i<M} γ^(i−P) (1/α)(1/4) x², mean over the model rows
        for b in (2, 3):
            P = int(batch.prompt_len[b])
            for i in range(P, int(batch.last_index[b])):
                x = 0.3 * logits[b, i, batch.labels[b, i]] - 0.9 * 0.3 * torch.logsumexp(logits[b, i + 1], -1)
                reg = reg - 0.9 ** (i - P) / 0.3 * 0.25 * x**2
        assert est["regularizer"].item() == pytest.approx(reg.item() / 2, rel=1e-12)
        (g_reg,) = torch.autograd.grad(-reg / 2 / est["tokens_per_row"], logits)
        assert torch.allclose(grad[model], g_reg[model], rtol=1e-12, atol=1e-15)
    # other model-row logits leave every part of J but the regulariser as it was
    moved = logits.detach().clone()
    moved[model] += 2.0 * torch.randn_like(moved[model])
    est2 = sequence_match_loss(moved, batch.labels, **kw(batch), **args)
    for k in ("phi", "value_data", "terminal", "value_model", "v0_data"):
        assert est2[k].item() == pytest.approx(est[k].item(), rel=1e-13, abs=1e-15), k
    # the residue, by hand: V at each row's first state after the prompt
    V = [[lse(z) for z in row] for row in logits.detach().tolist()]
    S = [int(p) for p in batch.prompt_len]
    residue = 0.5 * ((V[0][S[0]] + V[1][S[1]]) / 2 - (V[2][S[2]] + V[3][S[3]]) / 2)
    assert est["residue"].item() == pytest.approx(residue, rel=1e-12, abs=1e-15)
    plug = sequence_match_loss(logits, batch.labels, **kw(batch), **args, initial_value="plugin")
    assert plug["total"].item() - est["total"].item() == pytest.approx(residue, rel=1e-10, abs=1e-13)
    assert plug["residue"].item() == pytest.approx(residue, rel=1e-12, abs=1e-15)
    r = initial_value_residue(logits, batch, mask_prompt=True, logit_bound=None)
    assert r.item() == pytest.approx(residue, rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------------------------
# Model rows telescope (App. C.3); the chi2_mix regularizer gives them their gradient
# --------------------------------------------------------------------------------------------


def leaf_logits(batch, seed=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    B, T = batch.input_ids.shape
    return (scale * torch.randn(B, T, 6, generator=g, dtype=torch.float64)).requires_grad_()


@pytest.mark.parametrize("divergence", ["chi2", "kl", "js"])
@pytest.mark.parametrize("alpha", [0.01, 0.3, 1.0])
def test_model_rows_have_no_gradient_beyond_initial_state(divergence, alpha):
    """eq. 4's plug-in form: a model row telescopes to −V(u_0)/2 (App. C.3)."""
    batch = toy_batch()
    logits = leaf_logits(batch)
    out = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=alpha, gamma=0.95,
                              divergence=divergence, initial_value="plugin")
    (grad,) = torch.autograd.grad(out["loss"], logits)
    for b in (2, 3):  # model rows: only u_0 carries gradient, and it is that of V(u_0)/2 / n_model
        assert torch.equal(grad[b, 1:], torch.zeros_like(grad[b, 1:]))
        n_bar = out["tokens_per_row"].item()  # the loss is −J / n̄
        expected = 0.5 * torch.softmax(logits[b, 0].detach(), -1) / 2 / n_bar  # d(+V/2)/dlogits, 2 rows
        assert torch.allclose(grad[b, 0], expected, rtol=1e-12, atol=1e-15)
    assert grad[0, 1:].abs().sum() > 0  # data rows do learn

    # a rollout cut before <eos> telescopes just the same (eq. 4's −γ^M/2 V(u_M) is there for
    # every model sequence): no gradient at its last state, which would otherwise be pushed up
    batch.terminal[2:] = False
    out2 = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=alpha, gamma=0.95,
                               divergence=divergence, initial_value="plugin")
    (grad2,) = torch.autograd.grad(out2["loss"], logits)
    assert torch.equal(grad2, grad)


def test_chi2_mix_regularizer_gives_model_rows_their_gradient():
    alpha, gamma = 0.3, 0.95
    batch = toy_batch()
    logits = leaf_logits(batch)
    out = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=alpha, gamma=gamma,
                              divergence="chi2_mix")
    (grad,) = torch.autograd.grad(out["loss"], logits)

    # brute force: −Σ_{P<=i<M} γ^i (1/α)(1/4)(α ℓ(a_i|u_i) − γ α V(u_{i+1}))², mean over model rows
    reg = 0.0
    for b in (2, 3):
        for i in range(int(batch.prompt_len[b]), int(batch.last_index[b])):
            x = alpha * logits[b, i, batch.labels[b, i]] - gamma * alpha * torch.logsumexp(logits[b, i + 1], -1)
            reg = reg - gamma**i / alpha * 0.25 * x**2
    reg = reg / 2
    assert out["regularizer"].item() == pytest.approx(reg.item(), rel=1e-12)
    (grad_reg,) = torch.autograd.grad(-reg / out["tokens_per_row"], logits)
    # beyond u_0 the model rows' gradient is exactly the regularizer's
    assert torch.allclose(grad[2:, 1:], grad_reg[2:, 1:], rtol=1e-10, atol=1e-14)
    # prompt states (1..P-1) get nothing, states P..M do
    P, M = int(batch.prompt_len[2]), int(batch.last_index[2])
    assert torch.equal(grad[2, 1:P], torch.zeros_like(grad[2, 1:P]))
    assert all(grad[2, i].abs().sum() > 0 for i in range(P, M + 1))


def test_regularizer_ignores_data_rows_and_prompt():
    batch = toy_batch()
    base = leaf_logits(batch).detach()

    def reg(logits):
        return sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.3, gamma=0.95,
                                   divergence="chi2_mix")["regularizer"].item()

    r0 = reg(base)
    assert r0 < 0
    changed = base.clone()
    changed[:2] += 3.0 * torch.randn_like(changed[:2])  # data rows
    P = int(batch.prompt_len[2])
    changed[2, :P] += 3.0 * torch.randn_like(changed[2, :P])  # model row 2: prompt states
    assert reg(changed) == pytest.approx(r0, rel=1e-13)
    changed[2, P] += 1.0  # the first on-policy state does count
    assert reg(changed) != pytest.approx(r0, rel=1e-6)
    # and no regularizer at all without model rows
    batch.is_model[:] = False
    assert reg(base) == 0.0


# --------------------------------------------------------------------------------------------
# gradcheck, JS continuation, logit bound
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_gradcheck(divergence):
    batch = toy_batch()
    batch.terminal[1] = False  # a force-free, unfinished data row as well
    logits = leaf_logits(batch, seed=3, scale=2.0)
    alpha, gamma, bound = 0.8, 0.8, 3.0  # a small bound: some logits sit in its tanh region
    assert (logits.abs() > bound / 2).any()
    if divergence == "js":  # make sure both branches of the JS φ are exercised
        V = torch.logsumexp(bound_logits(logits.detach(), bound), -1)
        ell = bound_logits(logits.detach(), bound).gather(-1, batch.labels.clamp(min=0)[..., None])[..., 0]
        x = alpha * (ell[:, :-1] - gamma * V[:, 1:])[batch.labels[:, :-1] != IGNORE_INDEX]
        assert (x < X0).any() and (x > X0).any()

    def f(z):
        return sequence_match_loss(z, batch.labels, **kw(batch), alpha=alpha, gamma=gamma,
                                   divergence=divergence, logit_bound=bound)["loss"]

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_js_continuation_is_c1_and_finite():
    eps = 1e-7
    x = torch.tensor([X0 - eps, X0, X0 + eps], dtype=torch.float64, requires_grad=True)
    y = phi_js(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    value_x0 = math.log(2.0 - math.exp(-X0))
    slope_x0 = math.exp(-X0) / (2.0 - math.exp(-X0))  # derivative of log(2 − e^{−x}) at X0
    assert y.tolist() == pytest.approx([value_x0] * 3, abs=1e-4)
    assert dy.tolist() == pytest.approx([slope_x0] * 3, rel=1e-4)
    # far from x0 it is the paper's φ above and a straight line below
    assert phi_js(torch.tensor(0.3, dtype=torch.float64)).item() == pytest.approx(math.log(2 - math.exp(-0.3)))
    xs = torch.tensor([-10.0, -5.0], dtype=torch.float64)
    assert phi_js(xs).tolist() == pytest.approx([value_x0 + slope_x0 * (v - X0) for v in xs.tolist()])
    # finite values and gradients everywhere, including where log(2 − e^{−x}) is −∞ or NaN
    x = torch.tensor([-1e6, -50.0, -math.log(2.0), X0, 0.0, 50.0, 1e6], requires_grad=True)
    y = phi_js(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(y).all() and torch.isfinite(dy).all()


def test_bound_logits():
    B = DEFAULT_LOGIT_BOUND
    x = torch.linspace(-1e4, 1e4, 200001, dtype=torch.float64, requires_grad=True)
    y = bound_logits(x, B)
    (dy,) = torch.autograd.grad(y.sum(), x)
    inside = x.abs() <= B / 2
    assert torch.equal(y[inside], x[inside])  # ordinary logits untouched
    assert (y.abs() <= B).all() and (dy >= 0).all() and (torch.diff(y) >= 0).all()
    # strictly inside (−B, B), strictly increasing, until tanh rounds to 1 in float64
    mid = x.abs() <= 8 * B
    assert (y[mid].abs() < B).all() and (dy[mid] > 0).all() and (torch.diff(y[mid]) > 0).all()
    # C1 at the switch point: one-sided derivatives both 1
    h = torch.tensor([B / 2 - 1e-9, B / 2 + 1e-9], dtype=torch.float64, requires_grad=True)
    (dh,) = torch.autograd.grad(bound_logits(h, B).sum(), h)
    assert dh.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert bound_logits(x, None) is x
    assert torch.autograd.gradcheck(lambda z: bound_logits(z, 2.0),
                                    (torch.linspace(-5, 5, 41, dtype=torch.float64).requires_grad_(),))


@pytest.mark.parametrize("divergence", ["chi2", "chi2_mix"])
def test_default_bound_keeps_chi2_finite(divergence):
    batch = toy_batch()
    logits = (1e6 * torch.randn(*batch.input_ids.shape, 6)).requires_grad_()
    out = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.01, gamma=0.998,
                              divergence=divergence)
    (grad,) = torch.autograd.grad(out["loss"], logits)
    assert all(torch.isfinite(v).all() for v in out.values()) and torch.isfinite(grad).all()
    assert out["mean_v"].item() < DEFAULT_LOGIT_BOUND + math.log(6)


# --------------------------------------------------------------------------------------------
# padding, errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_padding_positions_and_rows_change_nothing(divergence):
    small = toy_batch()
    big = toy_batch(pad_to=small.input_ids.shape[1] + 3)
    Ts, Tb = small.input_ids.shape[1], big.input_ids.shape[1]
    # plus an all-padding row
    def add_row(t, fill):
        return torch.cat([t, torch.full_like(t[:1], fill)])
    labels = add_row(big.labels, IGNORE_INDEX)
    extra = dict(state_mask=add_row(big.state_mask, False), terminal=add_row(big.terminal, True),
                 last_index=add_row(big.last_index, -1), is_model=add_row(big.is_model, False),
                 prompt_len=add_row(big.prompt_len, 0))
    base = leaf_logits(small, seed=5)
    garbage = 1e4 * torch.randn(5, Tb, 6, dtype=torch.float64)
    garbage[:4, :Ts] = base.detach()
    garbage.requires_grad_()
    # inside padding the garbage may even be NaN
    with torch.no_grad():
        garbage[4, 0, 0] = float("nan")
        garbage[0, -1, 1] = float("inf")

    args = dict(alpha=0.2, gamma=0.9, divergence=divergence)
    a = sequence_match_loss(base, small.labels, **kw(small), **args)
    b = sequence_match_loss(garbage, labels, **extra, **args)
    for k in a:
        assert b[k].item() == pytest.approx(a[k].item(), rel=1e-12, abs=1e-14), k
    (ga,) = torch.autograd.grad(a["loss"], base)
    (gb,) = torch.autograd.grad(b["loss"], garbage)
    assert torch.allclose(gb[:4, :Ts], ga, rtol=1e-12, atol=1e-15)
    pad = ~extra["state_mask"]
    assert torch.equal(gb[pad], torch.zeros_like(gb[pad]))


def test_no_model_rows_and_bad_arguments():
    batch = toy_batch()
    batch.is_model[:] = False
    logits = leaf_logits(batch)
    out = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.1, gamma=0.9, initial_value="plugin")
    assert out["value_model"].item() == 0.0 and out["regularizer"].item() == 0.0
    assert out["residue"].item() == 0.0
    assert torch.isfinite(out["loss"])
    # the default estimator still has the model rows' −½E_ρ₀[V(s₀)], taken at the data rows
    out = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.1, gamma=0.9)
    v0 = [torch.logsumexp(logits[b, 0], -1).item() for b in range(4)]
    assert out["value_model"].item() == pytest.approx(-0.5 * sum(v0) / 4, rel=1e-12)
    assert out["residue"].item() == 0.0
    with pytest.raises(ValueError, match="unknown initial_value 'model'.*data, plugin"):
        sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.1, gamma=0.9, initial_value="model")
    with pytest.raises(ValueError, match="unknown divergence 'wasserstein'.*chi2, chi2_mix, kl, js"):
        sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.1, gamma=0.9, divergence="wasserstein")
    with pytest.raises(ValueError, match="alpha"):
        sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.0, gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.1, gamma=1.0)


def test_bf16_logits_are_upcast():
    batch = toy_batch()
    logits = leaf_logits(batch).detach().float()
    a = sequence_match_loss(logits, batch.labels, **kw(batch), alpha=0.1, gamma=0.9)["loss"]
    b = sequence_match_loss(logits.bfloat16(), batch.labels, **kw(batch), alpha=0.1, gamma=0.9)["loss"]
    assert b.dtype == torch.float32 and b.item() == pytest.approx(a.item(), rel=0.05)


# --------------------------------------------------------------------------------------------
# BC / MLE
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_prompt", [False, True])
def test_bc_loss_matches_brute_force(mask_prompt):
    batch = toy_batch()
    logits = leaf_logits(batch, seed=7)
    got = bc_loss(logits, batch.labels, prompt_len=batch.prompt_len, mask_prompt=mask_prompt)
    total, n = 0.0, 0
    for b in range(logits.shape[0]):
        for i in range(logits.shape[1]):
            a = int(batch.labels[b, i])
            if a == IGNORE_INDEX or (mask_prompt and i < int(batch.prompt_len[b])):
                continue
            total -= torch.log_softmax(logits[b, i], -1)[a].item()
            n += 1
    assert got.item() == pytest.approx(total / n, rel=1e-12)
    assert mle_loss is bc_loss
    # the <bkspc> labels are learned (BC = MLE + <bkspc>)
    assert (batch.labels == B_).any()
    with pytest.raises(ValueError, match="prompt_len"):
        bc_loss(logits, batch.labels, mask_prompt=True)
    # nothing labelled: 0, not NaN
    none = torch.full_like(batch.labels, IGNORE_INDEX)
    assert bc_loss(logits, none).item() == 0.0


@pytest.mark.parametrize("mask_prompt", [False, True])
def test_sm_dict_bc_term_is_the_data_rows_cross_entropy(mask_prompt):
    """The BC term that rides on the SM loss's logsumexp equals F.cross_entropy over the data
    rows' labelled actions (value and gradient) while the logit bound is inactive."""
    batch = toy_batch(pad_to=9)
    logits = leaf_logits(batch, seed=11, scale=3.0)
    out = sequence_match_loss_from_batch(logits, batch, alpha=0.1, gamma=0.9, mask_prompt=mask_prompt)
    data = ~batch.is_model
    target = batch.labels[data].clone()
    if mask_prompt:
        idx = torch.arange(target.shape[1])
        target[idx < batch.prompt_len[data].unsqueeze(1)] = IGNORE_INDEX
    ref = torch.nn.functional.cross_entropy(logits[data].flatten(0, 1), target.flatten(), ignore_index=IGNORE_INDEX)
    assert out["bc"].item() == pytest.approx(ref.item(), rel=1e-12)
    (g,) = torch.autograd.grad(out["bc"], logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    assert torch.allclose(g, g_ref, atol=1e-12)
    # model rows and padding carry no BC gradient
    assert g[batch.is_model].abs().max() == 0 and g[~batch.state_mask].abs().max() == 0


def test_bound_is_exactly_the_identity_in_range():
    x = (10 * torch.randn(4, 5, 7, dtype=torch.float64)).clamp(-24, 24).requires_grad_()
    y = bound_logits(x, DEFAULT_LOGIT_BOUND)
    (g,) = torch.autograd.grad((y * torch.arange(7.0, dtype=torch.float64)).sum(), x)
    assert torch.equal(y, x) and torch.equal(g, torch.arange(7.0, dtype=torch.float64).expand_as(x))


# --------------------------------------------------------------------------------------------
# Unlikelihood
# --------------------------------------------------------------------------------------------


def ul_brute_force(logits, labels, input_ids, state_mask):
    total, n = 0.0, 0
    for b in range(logits.shape[0]):
        for i in range(logits.shape[1]):
            if not state_mask[b, i] or labels[b, i] == IGNORE_INDEX:
                continue
            n += 1
            context = {int(input_ids[b, j]) for j in range(1, i + 1)}  # this row's x_1..x_i
            negatives = context - {int(labels[b, i])}
            p = torch.softmax(logits[b, i].double(), -1)
            total += sum(-math.log(max(1.0 - p[c].item(), 1e-5)) for c in negatives)
    return total / max(n, 1)


def clean_batch(rows, T=None):
    trajs = [actions_to_inputs(r, bos_id=IBOS, bkspc_id=B_, eos_id=E) for r in rows]
    return collate(trajs, pad_id=IPAD, pad_to=T)


def test_unlikelihood_matches_brute_force():
    # repeats inside a row (a token counted once), the target inside the context, ragged rows
    batch = clean_batch([[T0, T1, T0, T0, T2, T1, E], [T3, T3, T3, E], [T2, E]])
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(*batch.input_ids.shape, 8, generator=g, dtype=torch.float64)
    got = unlikelihood_loss(logits, batch.labels, batch.input_ids, state_mask=batch.state_mask)
    want = ul_brute_force(logits, batch.labels, batch.input_ids, batch.state_mask)
    assert got.item() == pytest.approx(want, rel=1e-10)
    assert unlikelihood_loss(logits, batch.labels, batch.input_ids, state_mask=batch.state_mask,
                             weight=0.5).item() == pytest.approx(0.5 * want, rel=1e-10)


def test_unlikelihood_excludes_target_and_never_crosses_rows():
    # row 0 repeats one token: every context token is the target, so no negatives at all
    batch = clean_batch([[T3, T3, T3, T3]])
    logits = torch.randn(*batch.input_ids.shape, 8, dtype=torch.float64)
    assert unlikelihood_loss(logits, batch.labels, batch.input_ids, state_mask=batch.state_mask).item() == 0.0

    # two rows with disjoint tokens: the batch value is the label-weighted mix of the rows alone
    rows = [[T0, T1, T0, E], [T2, T3, T3, T2, T3, E]]
    batch = clean_batch(rows)
    g = torch.Generator().manual_seed(12)
    logits = torch.randn(*batch.input_ids.shape, 8, generator=g, dtype=torch.float64)
    both = unlikelihood_loss(logits, batch.labels, batch.input_ids, state_mask=batch.state_mask).item()
    alone, counts = [], []
    for b, r in enumerate(rows):
        one = clean_batch([r])
        L = one.input_ids.shape[1]
        alone.append(unlikelihood_loss(logits[b:b + 1, :L], one.labels, one.input_ids,
                                       state_mask=one.state_mask).item())
        counts.append(int((one.labels != IGNORE_INDEX).sum()))
    assert both == pytest.approx(sum(a * c for a, c in zip(alone, counts)) / sum(counts), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def test_beta_schedule_shape():
    k = 1000
    assert beta_at(0, bc_warmup_steps=k) == 1.0
    assert beta_at(k - 1, bc_warmup_steps=k) == 1.0  # BC only during warm-up
    assert beta_at(k, bc_warmup_steps=k) == pytest.approx(1.0)  # annealing starts at 1
    assert beta_at(k + 1000, bc_warmup_steps=k) == pytest.approx(0.6)  # linear: halfway
    assert beta_at(k + 2000, bc_warmup_steps=k) == pytest.approx(0.2)  # end of annealing
    assert beta_at(k + 50_000, bc_warmup_steps=k) == pytest.approx(0.2)  # final
    assert beta_at(15, bc_warmup_steps=10, beta_anneal_steps=10, beta_final=0.5) == pytest.approx(0.75)
    assert beta_at(10, bc_warmup_steps=10, beta_anneal_steps=0, beta_final=0.3) == 0.3
    betas = [beta_at(s, bc_warmup_steps=k) for s in range(0, 5000, 7)]
    assert all(b1 >= b2 for b1, b2 in zip(betas, betas[1:]))


def test_lr_schedule_shape():
    peak, warmup, total = 1e-3, 2000, 10_000
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = make_lr_scheduler(opt, warmup_steps=warmup, total_steps=total)
    lrs = []
    for _ in range(total + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0  # linear warm-up from 0
    assert lrs[1000] == pytest.approx(0.5 * peak)
    assert lrs[warmup] == pytest.approx(peak)  # end of warm-up: the peak
    # cosine decay: 0.5 (1 + cos(π progress))
    for s in (4000, 6000, 9000):
        progress = (s - warmup) / (total - warmup)
        assert lrs[s] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * progress)), rel=1e-9)
    assert lrs[total] == pytest.approx(0.0, abs=1e-12)  # final
    assert all(a <= b for a, b in zip(lrs[:warmup], lrs[1:warmup + 1]))
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))
