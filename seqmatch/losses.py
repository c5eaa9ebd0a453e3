"""Training objectives as pure functions: SequenceMatch (eq. 4), BC, MLE, unlikelihood; schedules.

Everything here takes logits and the tensors of a ``seqmatch.actions.Batch`` and returns tensors;
no model, no optimizer state (except the LR scheduler factory at the end).

SequenceMatch (Cundy & Ermon 2024, §3.2.1 and §4, eq. 4)
-------------------------------------------------------
The logits are Q-values: ``ℓ(a|s) = logits[b, i, a]`` for the state s of input i, over the
vocabulary plus ``<bkspc>``, and ``V(s) = logsumexp_a ℓ(a|s)``. For a data trajectory with states
s_0..s_N and a model rollout with states u_0..u_M (input 0 is the ``<bos>`` state, time index i,
discount γ^i; the time index keeps increasing through backspaces), eq. 4 is

    J =   Σ_{i<N} γ^i (1/α) φ(α ℓ(a_i|s_i) − γ α V(s_{i+1}))            "phi"
        − Σ_{i<N} γ^i/2 [V(s_i) − γ V(s_{i+1})]                          "value_data"
        − Σ_{i<M} γ^i/2 [V(u_i) − γ V(u_{i+1})]                          "value_model"
        + γ^N/(α(1−γ)) φ(α(1−γ) V(s_N)) − γ^N/2 V(s_N) − γ^M/2 V(u_M)    "terminal"

with the data terminal terms only for completed (or force-terminated, §4.2) data sequences and
−γ^M/2 V(u_M) for every model rollout, finished or not (for an unfinished one it is the exact sum
of its unobserved value differences). Per batch, J is the mean over data rows of their per-row
sums plus the mean over model rows of theirs; the loss to minimise is −J/n̄, with n̄ the mean
number of actions per data row (BC's per-token scale; ``per_token=False`` gives −J). With
``mask_prompt`` every sum starts at the state after the prompt, whose time index becomes 0.

Three facts the tests pin down:
* Model rows telescope (App. C.3): the value differences and the −γ^M/2 V(u_M) term sum to
  −V(u_0)/2, so without a regularizer a model row has no gradient beyond u_0.
* That −½V(u_0) and the +½V(s_0) left in each data row cancel in expectation over prompts, not
  in a batch whose data rows and rollouts start from different prompts. The default estimator
  (``initial_value="data"``) takes the model rows' −½E_{ρ₀}[V(s₀)] at the data rows' initial
  states, the same distribution: same expectation and optimum, and the residue is exactly 0 in
  every batch (``"plugin"`` keeps eq. 4 row by row).
* With φ(x) = −e^{−x} (KL) and α → 0, ∇J is the gradient of the γ-weighted MLE
  Σ_i γ^i log p(a_i|s_i) (App. D.2), whatever prompts the model rows start from (with
  ``"plugin"``: only when they start in the data rows' initial states).

Divergences (App. D): ``chi2`` φ(x) = x − x²/4; ``chi2_mix`` the same φ plus the on-policy
regularizer below (the paper's choice); ``kl`` φ(x) = −e^{−x}; ``js`` φ(x) = log(2 − e^{−x}),
continued linearly below −log 2 + δ (App. G.1).

Logit bound (App. C.6): the plug-in estimator is consistent when the expected loss is finite,
which for χ² the paper ensures "by bounding the logits within some large range". It matters: the
data terminal term γ^N/(α(1−γ)) φ(α(1−γ)V(s_N)) − γ^N/2 V(s_N) is maximised at
V(s_N) = 1/(α(1−γ)) (5·10⁴ for the text setting), so unbounded logits at terminal states run away.
``bound_logits`` is the identity on [−B/2, B/2] and saturates smoothly (C², tanh) to ±B outside,
so ordinary logits — and hence the policy the sampler draws from — are untouched while every
logit the loss sees lies in (−B, B). Default B = ``DEFAULT_LOGIT_BOUND`` = 50 (identity on ±25);
``logit_bound=None`` disables it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seqmatch.actions import IGNORE_INDEX
from seqmatch.runs import DIVERGENCES  # the names, shared with the workflow; φ of each below
from seqmatch.runs import INITIAL_VALUE_ESTIMATORS

DEFAULT_LOGIT_BOUND = 50.0
JS_DELTA = 0.01  # App. G.1: linear continuation of the JS φ below −log 2 + δ


# ---------------------------------------------------------------------------------------------
# φ for each divergence (App. D)
# ---------------------------------------------------------------------------------------------


def phi_chi2(x: torch.Tensor) -> torch.Tensor:
    """χ²: φ(x) = x − x²/4 (App. D.4)."""
    return x - 0.25 * x * x


def phi_kl(x: torch.Tensor) -> torch.Tensor:
    """KL, shifted so that φ(x) = −e^{−x} (App. D.2); (1/α)φ(αx) → x − 1/α as α → 0."""
    return -torch.exp(-x)


_JS_X0 = -math.log(2.0) + JS_DELTA
_JS_PHI0 = math.log(2.0 - math.exp(-_JS_X0))  # = log(2(1 − e^{−δ}))
_JS_SLOPE = math.exp(-_JS_X0) / (2.0 - math.exp(-_JS_X0))  # = 1/(e^δ − 1) ≈ 99.5


def phi_js(x: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon: φ(x) = log(2 − e^{−x}) (App. D.3), which is −∞ at x = −log 2.

    App. G.1: below x0 = −log 2 + δ (δ = 0.01) we use the tangent line at x0, so φ is continuous,
    differentiable and finite everywhere.
    """
    # the log branch is evaluated on x clamped to its domain so that neither branch of the
    # `where` produces inf/NaN (a NaN in the unused branch would still poison the gradient)
    xc = x.clamp(min=_JS_X0)
    curve = torch.log(2.0 - torch.exp(-xc))
    line = _JS_PHI0 + _JS_SLOPE * (x - _JS_X0)
    return torch.where(x < _JS_X0, line, curve)


_PHI = {"chi2": phi_chi2, "chi2_mix": phi_chi2, "kl": phi_kl, "js": phi_js}
assert tuple(_PHI) == DIVERGENCES, "seqmatch.runs.DIVERGENCES and the φ table must name the same divergences"


def phi(x: torch.Tensor, divergence: str) -> torch.Tensor:
    """The concave φ of ``divergence`` (one of ``DIVERGENCES``)."""
    return _PHI[_check_divergence(divergence)](x)


def _check_divergence(divergence: str) -> str:
    if divergence not in _PHI:
        raise ValueError(f"unknown divergence {divergence!r}; expected one of {', '.join(DIVERGENCES)}")
    return divergence


def bound_logits(logits: torch.Tensor, bound: float | None = DEFAULT_LOGIT_BOUND) -> torch.Tensor:
    """Bound logits to (−bound, bound) for the χ² estimator's finiteness (App. C.6).

    Identity for |x| <= h = bound/2; beyond, sign(x)·(h + h·tanh((|x| − h)/h)), which matches the
    identity's value, slope and curvature at |x| = h and tends to ±bound. Gradients never vanish
    (unlike a clamp), and logits in the ordinary range are exactly those the sampler uses.
    ``bound=None`` returns the logits unchanged.
    """
    if bound is None:
        return logits
    if bound <= 0:
        raise ValueError(f"logit_bound must be positive (or None), got {bound}")
    h = 0.5 * float(bound)
    # the usual case: every logit in the identity range; skip ~6 full-size [B, T, V] temporaries
    # (aminmax reads the logits once and allocates nothing of their size, unlike abs().amax())
    lo, hi = torch.aminmax(logits.detach())
    if -h <= lo and hi <= h:
        return logits
    a = logits.abs()
    soft = torch.sign(logits) * (h + h * torch.tanh((a - h) / h))
    return torch.where(a <= h, logits, soft)


# ---------------------------------------------------------------------------------------------
# SequenceMatch objective (eq. 4)
# ---------------------------------------------------------------------------------------------


def _row_mean(per_row: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_row`` over the rows selected by ``rows`` (0 when there are none)."""
    return torch.where(rows, per_row, 0.0).sum() / rows.sum().clamp(min=1)


def sequence_match_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    state_mask: torch.Tensor,
    terminal: torch.Tensor,
    last_index: torch.Tensor,
    is_model: torch.Tensor,
    prompt_len: torch.Tensor,
    alpha: float,
    gamma: float,
    divergence: str = "chi2_mix",
    logit_bound: float | None = DEFAULT_LOGIT_BOUND,
    mask_prompt: bool = False,
    per_token: bool = True,
    initial_value: str = "data",
) -> dict[str, torch.Tensor]:
    """The SequenceMatch objective (eq. 4) on a batch holding data rows and model rows together.

    Shapes (as produced by ``seqmatch.actions.collate``): ``logits`` [B, T, V] (V includes
    ``<bkspc>``), ``labels`` [B, T] (``-100``: no action), ``state_mask`` [B, T] bool (real
    inputs), ``terminal`` [B] bool, ``last_index`` [B] long (index N or M of the final state),
    ``is_model`` [B] bool (replay-buffer rollout rows), ``prompt_len`` [B] long. A row whose
    ``state_mask`` is all False is ignored entirely (not counted in the row means).

    Each row's sums start at its first state S (S = 0; with ``mask_prompt``, S = ``prompt_len``,
    the state after the prompt, which is then the episode's initial state: the prompt is given,
    not acted). With d_i = γ^(i−S), V_i = V(state i) and x_i = α ℓ(a_i|s_i) − γ α V_{i+1}:

    * data rows:  Σ_{S<=i<N, label valid} d_i (1/α) φ(x_i)  −  Σ_{S<=i<N} d_i/2 (V_i − γ V_{i+1})
                  + [terminal] (d_N/(α(1−γ)) φ(α(1−γ) V_N) − d_N/2 V_N)
    * model rows: −Σ_{S<=i<M} d_i/2 (V_i − γ V_{i+1})  −  d_M/2 V_M   (= −V(u_S)/2, telescoped)
      + for ``chi2_mix``: −Σ_{prompt_len<=i<M, label valid} d_i (1/α) (1/4) x_i².

    ``initial_value`` chooses the estimator of the model rows' value term, whose expectation is
    −½ E_{ρ₀}[V(s₀)] (App. C.3: it telescopes to the initial state):

    * ``"data"`` (default): −½ × the mean of V(s_S) over the *data* rows. Data and model rows
      start from the same initial-state distribution ρ₀ (the rollouts' prompts are drawn from the
      training data), so this has the same expectation for every θ — the objective and its
      optimum are unchanged — but the data rows' +½V(s_S) (what is left of their φ and value
      terms at the initial state) now cancels in every batch instead of only on average over
      prompts. The model rows' value differences are not computed: their only gradient is the
      ``chi2_mix`` regulariser's.
    * ``"plugin"``: eq. 4 row by row, each model row with its own −½V(u_S). Unbiased too, but
      the residue ½(mean V(s_S) − mean V(u_S)) of two independent prompt sets is in every
      gradient (measured on add/sub: 3.4× the BC gradient's norm by the end of training).

    A model row's −d_M/2 V_M is there whether or not the rollout reached ``<eos>`` (eq. 4 has it
    for every model sequence): for an unfinished rollout it is exactly the unobserved rest of the
    value differences, Σ_{i>=M} d_i/2 (V_i − γ V_{i+1}) = d_M/2 V_M. Without it a rollout cut at
    ``max_new_tokens`` would add +d_M/2 V_M to J, and maximising J drives V at the cut upwards
    without bound. So every model row telescopes to −V(u_S)/2 (App. C.3). A data row that did not
    end (never the case for the trainer's rows, which end in ``<eos>`` or are force-terminated)
    gets no terminal terms: its unobserved φ terms are unknown.

    ``mask_prompt`` moves S for data and model rows alike: masking φ alone would leave the value
    differences of the prompt states, and the prompt's actions (not the model's, App. E) would
    still be trained through them.

    The ``chi2_mix`` regularizer (App. D.4, Al-Hafez et al. 2023): 2χ²(ρ_data ‖ (ρ_data+ρ_θ)/2)
    replaces the single r²/4 penalty of χ² on data by ψ(r) = βc E_data[r²] + (1−β)c E_θ[r²] with
    c = 0.5, β = 0.5, i.e. r²/4 on data (already inside φ(x) = x − x²/4) and r²/4 on model
    transitions. With r = x/α scaled like the φ term, (1/α)·(x²/4) per model transition, weighted
    by d_i like every other term. The prompt is always masked here because its actions were not
    drawn from the current policy (App. E).

    The next state s_{i+1} of the action at i is input i+1, also when it is a noise state (§4.2
    augmentation: the noise is the environment's dynamics). The logits are first passed through
    ``bound_logits(·, logit_bound)`` (App. C.6), and both ℓ and V use the bounded values.

    Scale. J is per sequence: the mean over data rows of their sums plus the mean over model rows
    of theirs. BC is a per-token mean, so in L = β L_BC + (1 − β) L_SM the SM term would outweigh
    BC by the sequence length (~80x on arithmetic) and β would do little. With ``per_token`` (the
    default) the loss is −J / n̄, n̄ = the mean number of actions per data row that the sums count
    (the same actions BC averages over), a constant per batch: the same objective and optimum, on
    BC's scale (App. D.2's KL limit becomes the per-token γ-weighted MLE, tested).

    Returns a dict: ``loss`` = −J / n̄ (or −J without ``per_token``; differentiable, minimise it);
    ``bc`` (differentiable), the BC cross-entropy V_i − ℓ(a_i|s_i) averaged over the labelled
    actions of the data rows (prompt actions left out when ``mask_prompt``), which equals
    ``bc_loss`` on the data rows whenever the bound is inactive (it shares this function's
    logsumexp instead of a second log-softmax over [B, T, V]; when the bound is active it is the
    cross-entropy of the bounded logits); and, detached for logging, ``total`` = J (per sequence)
    and its parts ``phi``, ``value_data`` (data rows' value differences), ``terminal`` (data rows'
    terminal terms), ``value_model`` (the model rows' value term as estimated: −½ mean V(s_S) of
    the data rows, or with ``"plugin"`` the model rows' value differences and −d_M/2 V_M),
    ``regularizer`` (each already averaged over its rows, so they sum to ``total``),
    ``tokens_per_row`` = n̄, ``mean_v`` (mean V over all real states), ``v0_data`` and
    ``v0_model`` (mean V at the initial state S of data rows and of model rows), ``v_final_data`` and
    ``v_final_model`` (mean V at the final state N of data rows and M of model rows) and ``residue`` =
    ½(v0_data − v0_model) when there are model rows (else 0): the term by which the plug-in J
    exceeds the ``"data"`` estimate, in J whether or not it is estimated (per sequence).
    """
    _check_divergence(divergence)
    if initial_value not in INITIAL_VALUE_ESTIMATORS:
        raise ValueError(f"unknown initial_value {initial_value!r}; expected one of "
                         f"{', '.join(INITIAL_VALUE_ESTIMATORS)}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must be in (0, 1) (the terminal term divides by 1 − γ), got {gamma}")
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"expected logits [B, T, V] and labels [B, T], got {tuple(logits.shape)}, "
                         f"{tuple(labels.shape)}")
    B, T, _ = logits.shape
    device = logits.device
    state_mask = state_mask.bool()
    terminal, is_model = terminal.bool(), is_model.bool()

    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # logsumexp and the squares want more than 8 mantissa bits
    # padding inputs must not matter even if their logits are garbage (a query that attends to
    # nothing gives NaN); masked_fill gives them zero gradient. Full rows need no [B, T, V] copy.
    if not bool(state_mask.all()):
        logits = logits.masked_fill(~state_mask.unsqueeze(-1), 0.0)
    logits = bound_logits(logits, logit_bound)

    V = torch.logsumexp(logits, dim=-1)  # [B, T]
    has_label = labels != IGNORE_INDEX
    ell = logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # ℓ(a_i|s_i)

    idx = torch.arange(T, device=device)
    N = last_index.clamp(min=0)
    prompt_len = prompt_len.to(device)
    start = torch.minimum(prompt_len, N) if mask_prompt else torch.zeros_like(N)  # S per row
    # discount d_i = γ^(i−S); the γ^{i+1−S} of "γ V(s_{i+1})" in the value differences is
    # d_{i+1} itself (not γ·d_i), so that for each state the two contributions cancel exactly
    k = (idx.unsqueeze(0) - start.unsqueeze(1)).clamp(min=0)  # [B, T]
    d = torch.pow(gamma, k.to(V.dtype))
    d_next = torch.pow(gamma, (k + 1).to(V.dtype))
    V_next = torch.cat([V[:, 1:], V.new_zeros(B, 1)], dim=1)  # V(s_{i+1})

    rows = state_mask.any(dim=1)
    data_rows, model_rows = rows & ~is_model, rows & is_model
    # transition i -> i+1 inside the row, from its first state S on
    trans = (idx >= start.unsqueeze(1)) & (idx < N.unsqueeze(1)) & state_mask
    act = trans & has_label  # an action was taken in state i

    # penalized action-logit term, data rows only
    x = alpha * (ell - gamma * V_next)
    phi_row = torch.where(act & data_rows.unsqueeze(1), d / alpha * phi(x, divergence), 0.0).sum(1)

    # value differences, every row (reported separately for data and model rows)
    diff = torch.where(trans, -0.5 * (d * V - d_next * V_next), 0.0).sum(1)

    # final state N (or M): terminal terms for finished data rows, −d_M/2 V_M for every model row
    V_N = V.gather(1, N.unsqueeze(1)).squeeze(1)
    d_N = torch.pow(gamma, (N - start).to(V.dtype))
    data_done = terminal & data_rows
    c = alpha * (1.0 - gamma)
    term_row = torch.where(data_done, d_N / c * phi(c * V_N, divergence) - 0.5 * d_N * V_N, 0.0)

    # initial state S of each row; the model rows' value term (see ``initial_value``)
    V_S = V.gather(1, start.unsqueeze(1)).squeeze(1)
    v0_data, v0_model = _row_mean(V_S, data_rows), _row_mean(V_S, model_rows)
    if initial_value == "data":
        value_model = -0.5 * v0_data
    else:
        value_model = _row_mean(diff - 0.5 * d_N * V_N, model_rows)

    # chi2_mix: on-policy r²/4 on model transitions after the prompt
    if divergence == "chi2_mix":
        on_policy = act & model_rows.unsqueeze(1) & (idx >= prompt_len.unsqueeze(1))
        reg_row = torch.where(on_policy, -d / alpha * 0.25 * x * x, 0.0).sum(1)
    else:
        reg_row = torch.zeros_like(diff)

    parts = {
        "phi": _row_mean(phi_row, data_rows),
        "value_data": _row_mean(diff, data_rows),
        "terminal": _row_mean(term_row, data_rows),
        "value_model": value_model,
        "regularizer": _row_mean(reg_row, model_rows),
    }
    J = sum(parts.values())
    bc_mask = _prompt_mask(labels, prompt_len, mask_prompt) & state_mask & data_rows.unsqueeze(1)
    n_actions = bc_mask.sum()
    bc = torch.where(bc_mask, V - ell, 0.0).sum() / n_actions.clamp(min=1)
    # n̄: the data rows' mean action count (a count: no gradient); 1 when there is nothing to count
    tokens_per_row = (n_actions / data_rows.sum().clamp(min=1)).to(V.dtype).clamp(min=1.0)
    loss = -J / tokens_per_row if per_token else -J
    out = {"loss": loss, "bc": bc, "total": J.detach(), "tokens_per_row": tokens_per_row.detach()}
    out.update({k: v.detach() for k, v in parts.items()})
    out["mean_v"] = (torch.where(state_mask, V, 0.0).sum() / state_mask.sum().clamp(min=1)).detach()
    out["v0_data"], out["v0_model"] = v0_data.detach(), v0_model.detach()
    out["v_final_data"] = _row_mean(V_N, data_rows).detach()
    out["v_final_model"] = _row_mean(V_N, model_rows).detach()
    out["residue"] = torch.where(model_rows.any(), 0.5 * (v0_data - v0_model), 0.0).detach()
    return out


def initial_value_residue(logits: torch.Tensor, batch, *, mask_prompt: bool = False,
                          logit_bound: float | None = DEFAULT_LOGIT_BOUND) -> torch.Tensor:
    """½(mean V(s_S) over data rows − mean V(u_S) over model rows), differentiable: what the
    plug-in estimator's J holds beyond the ``"data"`` estimate (0 without model rows). For the
    trainer's gradient diagnostics (its gradient, per token, is the part the fix removed)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    V = torch.logsumexp(bound_logits(logits, logit_bound), dim=-1)
    N = batch.last_index.clamp(min=0)
    start = torch.minimum(batch.prompt_len.to(N.device), N) if mask_prompt else torch.zeros_like(N)
    V_S = V.gather(1, start.unsqueeze(1)).squeeze(1)
    rows = batch.state_mask.bool().any(dim=1)
    is_model = batch.is_model.bool()
    data_rows, model_rows = rows & ~is_model, rows & is_model
    if not bool(model_rows.any()):
        return V_S.sum() * 0.0
    return 0.5 * (_row_mean(V_S, data_rows) - _row_mean(V_S, model_rows))


def sequence_match_loss_from_batch(logits: torch.Tensor, batch, **kw) -> dict[str, torch.Tensor]:
    """``sequence_match_loss`` with the tensors of a ``seqmatch.actions.Batch``; ``kw`` gives
    ``alpha``, ``gamma`` and optionally ``divergence``, ``logit_bound``, ``mask_prompt``,
    ``initial_value``."""
    return sequence_match_loss(
        logits,
        batch.labels,
        state_mask=batch.state_mask,
        terminal=batch.terminal,
        last_index=batch.last_index,
        is_model=batch.is_model,
        prompt_len=batch.prompt_len,
        **kw,
    )


# ---------------------------------------------------------------------------------------------
# Behavioural cloning / MLE and unlikelihood
# ---------------------------------------------------------------------------------------------


def _prompt_mask(labels: torch.Tensor, prompt_len: torch.Tensor | None, mask_prompt: bool) -> torch.Tensor:
    mask = labels != IGNORE_INDEX
    if mask_prompt:
        if prompt_len is None:
            raise ValueError("mask_prompt=True needs prompt_len")
        idx = torch.arange(labels.shape[1], device=labels.device)
        mask = mask & (idx >= prompt_len.to(labels.device).unsqueeze(1))
    return mask


def bc_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    prompt_len: torch.Tensor | None = None,
    mask_prompt: bool = False,
) -> torch.Tensor:
    """Mean token cross-entropy over labelled positions (``labels != -100``).

    BC ("MLE + <bkspc>", App. E) on noised trajectories, whose labels include ``<bkspc>``; plain
    MLE on clean data (``mle_loss``). With ``mask_prompt`` the prompt actions (positions
    ``i < prompt_len``) are excluded, as for arithmetic (App. E). 0 if nothing is labelled.
    """
    mask = _prompt_mask(labels, prompt_len, mask_prompt)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    target = labels.masked_fill(~mask, IGNORE_INDEX)
    ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    return ce / mask.sum().clamp(min=1)


mle_loss = bc_loss


def unlikelihood_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    input_ids: torch.Tensor,
    *,
    state_mask: torch.Tensor,
    weight: float = 1.0,
) -> torch.Tensor:
    """Token-level unlikelihood (Welleck et al. 2019; the paper's "MLE + ULK" baseline, H.1).

    At each labelled state i of row b the negatives are the distinct previous-context tokens
    C_i = {input_ids[b, j] : 1 <= j <= i} minus the target labels[b, i] (input 0 is ``<bos>``,
    not a context token; this is Welleck's x_{<t} \\ {x_t} with x_t the next token). Only the
    row's own inputs count, so rows never share negatives. Meant for clean data (no backspaces),
    where inputs 1..i are exactly the tokens of state i.

    Returns ``weight`` · mean over labelled states of Σ_{c ∈ C_i} −log(1 − p(c|s_i)); the trainer
    adds it to the MLE loss. 1 − p is clamped at 1e-5 as in the reference fairseq code.
    O(B·T²) memory (a [B, T, T] gather), not O(B·T·V).
    """
    B, T, Vdim = logits.shape
    device = logits.device
    state_mask = state_mask.bool()
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    ids = input_ids.clamp(0, Vdim - 1)  # pad ids are masked below; keep the gather in range

    j = torch.arange(T, device=device)
    # first occurrence of each token among inputs 1..T-1 of its row: counting only those makes
    # the negatives a set (a token repeated in the context is penalised once)
    same = ids.unsqueeze(2) == ids.unsqueeze(1)  # [B, j, j']
    earlier = (j.view(1, T) < j.view(T, 1)) & (j.view(1, T) >= 1)  # j' < j, j' >= 1
    first = ~(same & earlier).any(-1) & (j >= 1) & state_mask  # [B, j]

    labelled = (labels != IGNORE_INDEX) & state_mask  # [B, i]
    neg = (j.view(1, T) <= j.view(T, 1)).unsqueeze(0) & first.unsqueeze(1)  # [B, i, j]: 1<=j<=i
    neg = neg & (ids.unsqueeze(1) != labels.unsqueeze(2)) & labelled.unsqueeze(2)

    lp = logp.gather(-1, ids.unsqueeze(1).expand(B, T, T))  # log p(input_j | s_i), [B, i, j]
    one_minus_p = (1.0 - lp.exp()).clamp(min=1e-5)
    ul = torch.where(neg, -torch.log(one_minus_p), 0.0).sum()
    return weight * ul / labelled.sum().clamp(min=1)


# ---------------------------------------------------------------------------------------------
# Schedules (App. E)
# ---------------------------------------------------------------------------------------------


def beta_at(step: int, *, bc_warmup_steps: int, beta_anneal_steps: int = 2000, beta_final: float = 0.2) -> float:
    """BC weight β in L = β L_BC + (1 − β) L_SM (App. E).

    1 for ``step < bc_warmup_steps`` (BC alone; arithmetic 10,000, text 1,000), then linear from 1
    to ``beta_final`` (0.2) over ``beta_anneal_steps`` (2,000), then constant.
    """
    if step < bc_warmup_steps:
        return 1.0
    if beta_anneal_steps <= 0:
        return float(beta_final)
    frac = min(1.0, (step - bc_warmup_steps) / beta_anneal_steps)
    return 1.0 - (1.0 - beta_final) * frac


def make_lr_scheduler(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int):
    """Linear warmup over ``warmup_steps`` (2,000 in the paper) then cosine decay to 0 at
    ``total_steps`` (App. E): transformers' ``get_cosine_schedule_with_warmup``."""
    from transformers import get_cosine_schedule_with_warmup  # heavy import, only when needed

    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
