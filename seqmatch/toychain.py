"""The toy chain of Figure 1 / App. B: why KL is a poor guide to staying in distribution.

Setting (paper §2.1.1, App. B). The data is a chain x_1 .. x_n that never leaves
(P_data(x_term) = 0). The model follows the chain but, at every step, leaves it for a terminal
off-chain node x_term (the dashed nodes of Figure 1) with probability eps. There are n + 1
outcomes:

* omega: the whole chain,          P(omega) = 1,   Q(omega) = (1 - eps)^n =: q
* tau_k: left at step k (k=1..n),  P(tau_k) = 0,   Q(tau_k) = (1 - eps)^(k-1) * eps

with sum_k Q(tau_k) = 1 - q. P is the data, Q the model; q = P_Q(stay in distribution).

Closed forms (derivation)
-------------------------
* Forward KL (App. B.1):  KL(P||Q) = sum_x P log(P/Q) = log(1/q) = -n log(1 - eps).
  For small n*eps it is ~ n*eps; it grows only *linearly* in n however small q gets.
* Reverse KL (App. B.2):  KL(Q||P) = sum_x Q log(Q/P) = +inf for every eps > 0, because Q puts
  mass eps (1-eps)^(k-1) on tau_k where P has none. It is plotted as a clipped line marked "inf".
* chi^2 (App. B.3 writes D_chi2(Q, P) = E_{x~Q}[(P(x)/Q(x) - 1)^2]), i.e. Pearson's
  chi^2(P||Q) = sum_x (P(x) - Q(x))^2 / Q(x):

      omega  contributes (1 - q)^2 / q
      tau_k  contribute  (0 - Q(tau_k))^2 / Q(tau_k) = Q(tau_k), summing to 1 - q

      chi^2(P||Q) = (1 - q)^2 / q + (1 - q) = (1 - q)/q = 1/q - 1 = (1 - eps)^(-n) - 1.

  So chi^2 = 1 / P(stay) - 1: it is a function of the probability of staying in distribution
  only, and it blows up (exponentially in n) as that probability goes to 0, where the KL grows
  linearly. (The opposite order, chi^2(Q||P) = sum (Q - P)^2 / P, is +inf like the reverse KL.)
* chi^2-mixture (the paper's practical divergence, §4 and App. D.4), with M = (P + Q)/2:

      chi^2(P||M) = sum_x (P - M)^2 / M = 1/2 sum_x (P - Q)^2 / (P + Q) = chi^2(Q||M)

  (symmetric in P and Q);  omega gives (1 - q)^2 / (1 + q),  tau_k give Q(tau_k) (sum 1 - q):

      chi^2(P||M) = 1/2 [ (1 - q)^2/(1 + q) + (1 - q) ] = (1 - q) / (1 + q),

  finite although the supports differ, again a function of q only, in [0, 1).
* §2.1.1 writes the chi^2 as E_{x~P_data}[(P_theta(x)/P_data(x) - 1)^2]; taken literally (an
  expectation over the data's support only) this is (q - 1)^2 = (1 - q)^2, the *square of the
  probability of leaving* (the text says "staying"). We report the App. B.3 form above.

``tests/test_toychain.py`` checks every closed form against brute-force enumeration of the n + 1
outcomes.

Empirical check
---------------
Tabular policies on the chain, with token ids c (continue), x (the off-chain token), ``<eos>`` and
``<bkspc>``. The policy has one row of logits per state: on-chain states c^k (k = 0..n),
off-chain states c^k x, and one shared row for every other state. The model's irreducible
error is part of the environment: in every on-chain state c^k (k < n) the executed action is x
with probability eps whatever the policy chose (as in Figure 1; the same "stochastic dynamics"
device as the noise of §4.2). A trajectory stays in distribution when its final state, backspaces
applied, is c^n <eos>.

Four policies, same seed and steps (``VARIANTS``):

* MLE: actions {c, x, <eos>}, cross-entropy on data trajectories c^n <eos>. The data never
  visits an off-chain state, so nothing trains those rows, and without a backspace no action
  returns to the chain: P(stay) = (1 - eps)^n (up to how well the on-chain rows are fit).
* BC ("MLE + <bkspc>"): actions {c, x, <eos>, <bkspc>}, cross-entropy on data noised with rate
  eta (noise token x then <bkspc>, the label stays the data action; ``seqmatch.noise``). In this
  toy the demonstrations visit every off-chain row, so BC alone learns the backspace.
* SM, eta = 0: no backspace anywhere in the data. BC (= MLE with a <bkspc> column) for a warm-up,
  then beta * BC + (1 - beta) * SequenceMatch (``seqmatch.losses.sequence_match_loss``,
  chi^2-mixture, beta from ``seqmatch.losses.beta_at``) on batches built with
  ``seqmatch.actions.actions_to_inputs`` / ``collate`` from data rows and replay-buffer rollouts
  of the current policy under the same eps slips. Whatever it learns off the chain comes from
  the objective and its own rollouts: this is the variant that isolates SequenceMatch.
* SM, eta > 0: the paper's recipe (App. E: noise demonstrations + BC warm-up + SM).

alpha = 0.1, gamma = 0.95. The chi^2 phi(x) = x - x^2/4 caps the implied per-step reward of a data
action at 2/alpha; with alpha = 1 that cap is small enough that the SM policies keep ~10% on the
(recoverable) "leave" action and ~5% on <bkspc> in on-chain states; alpha = 0.1 makes them sharp.

The figure reports P(stay) of the four policies against eps next to (1 - eps)^n (panel c) and the
mean P(<bkspc> | c^k x) over training (panel d).

CLI::

    python -m seqmatch.toychain --out-pdf results/figure1.pdf --out-png results/figure1.png \
        [--chain-lengths 10 20 50] [--seed 0] [--empirical-steps 400] [--empirical-n 10] [--out-json F]
    python -m seqmatch.toychain --config FILE    # config.yaml's figure1 keys and the paths (seqmatch.options)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from seqmatch.io import atomic_savefig, atomic_write_text
from seqmatch.options import add_config_option, parse_args

# ----------------------------------------------------------------------------------------------
# exact closed forms (App. B)


def p_stay(eps, n: int):
    """P_Q(stay in distribution) = (1 - eps)^n."""
    eps = np.asarray(eps, dtype=float)
    return (1.0 - eps) ** n


def kl_forward(eps, n: int):
    """KL(P_data || Q_model) = -n log(1 - eps)."""
    eps = np.asarray(eps, dtype=float)
    return -n * np.log1p(-eps)


def kl_reverse(eps, n: int):
    """KL(Q_model || P_data): +inf for eps > 0 (Q has mass off the data's support), 0 at eps = 0."""
    eps = np.asarray(eps, dtype=float)
    return np.where(eps > 0, np.inf, 0.0)


def chi2(eps, n: int):
    """Pearson chi^2(P_data || Q_model) = sum (P - Q)^2 / Q = (1 - eps)^(-n) - 1 (App. B.3)."""
    eps = np.asarray(eps, dtype=float)
    return np.expm1(-n * np.log1p(-eps))


def chi2_mixture(eps, n: int):
    """chi^2(P || (P + Q)/2) = chi^2(Q || (P + Q)/2) = (1 - q) / (1 + q), q = (1 - eps)^n."""
    q = p_stay(eps, n)
    return (1.0 - q) / (1.0 + q)


# ----------------------------------------------------------------------------------------------
# empirical check: tabular policies on the chain

# action ids (= logit columns); <bos> and <pad> are input-only ids outside the logit range
C, X, EOS, BKSPC = 0, 1, 2, 3
BOS, PAD = 4, 5
N_ACTIONS = 4
ACTION_NAMES = {C: "c", X: "x", EOS: "<eos>", BKSPC: "<bkspc>"}


class ChainStates:
    """Maps a state (token list without <bos>) of the length-n chain to a row of the table.

    Rows: on(k) = k for the state c^k (k = 0..n); off(k) = n + 1 + k for c^k x; ``final`` =
    2n + 2 for the data's terminal state c^n <eos>; one shared row ``junk`` = 2n + 3 for every
    other state (x x, x c, c^(n+1), c^k <eos> with k < n, ...)."""

    def __init__(self, n: int):
        self.n = n
        self.n_rows = 2 * n + 4
        self.final = 2 * n + 2
        self.junk = 2 * n + 3

    def on(self, k: int) -> int:
        return k

    def off(self, k: int) -> int:
        return self.n + 1 + k

    def key(self, state: Sequence[int]) -> int:
        k = 0
        while k < len(state) and state[k] == C:
            k += 1
        rest = len(state) - k
        if rest == 0 and k <= self.n:
            return self.on(k)
        if rest == 1 and state[k] == X and k <= self.n:
            return self.off(k)
        if rest == 1 and state[k] == EOS and k == self.n:
            return self.final
        return self.junk

    def keys_along(self, actions: Sequence[int]) -> list[int]:
        """Row of each of the L+1 states visited by ``actions`` (state 0 = empty)."""
        state: list[int] = []
        keys = [self.key(state)]
        for a in actions:
            if a == BKSPC:
                if state:
                    state.pop()
            else:
                state.append(int(a))
            keys.append(self.key(state))
        return keys


def in_distribution(actions: Sequence[int], n: int) -> bool:
    from seqmatch.actions import apply_backspaces

    return apply_backspaces(actions, BKSPC) == [C] * n + [EOS]


def rollout(
    probs: np.ndarray,
    states: ChainStates,
    *,
    eps: float,
    rng: np.random.Generator,
    max_len: int,
    cum: np.ndarray | None = None,
) -> list[int]:
    """Sample one trajectory of actions from a tabular policy ``probs`` [rows, N_ACTIONS] under the
    eps dynamics (in an on-chain state c^k, k < n, the executed action is x w.p. eps)."""
    n = states.n
    if cum is None:
        cum = np.cumsum(probs, axis=-1)
    state: list[int] = []
    actions: list[int] = []
    u = rng.random((max_len, 2))
    for t in range(max_len):
        row = states.key(state)
        a = min(int(np.searchsorted(cum[row], u[t, 0] * cum[row, -1], side="right")), N_ACTIONS - 1)
        if row < n and u[t, 1] < eps:  # on-chain, not yet at the end: the model slips
            a = X
        actions.append(a)
        if a == EOS:
            break
        if a == BKSPC:
            if state:
                state.pop()
        else:
            state.append(a)
    return actions


def rollouts(probs, states, *, eps, rng, max_len, count) -> list[list[int]]:
    cum = np.cumsum(probs, axis=-1)
    return [rollout(probs, states, eps=eps, rng=rng, max_len=max_len, cum=cum) for _ in range(count)]


def _probs(table, allowed: Sequence[int]) -> np.ndarray:
    import torch

    mask = torch.full((N_ACTIONS,), float("-inf"), dtype=torch.float64)
    mask[list(allowed)] = 0.0
    with torch.no_grad():
        p = torch.softmax(table.detach().double() + mask, dim=-1).numpy()
    return p / p.sum(-1, keepdims=True)


@dataclass
class EmpiricalConfig:
    n: int = 10
    eps_train: float = 0.1  # slip probability of the rollouts the SM loss sees
    steps: int = 400
    batch_size: int = 16
    lr: float = 0.1  # Adam on the logit table
    eta: float = 0.05  # noise rate of the "paper recipe" variants (x then <bkspc>, §4.2)
    alpha: float = 0.1  # with alpha = 1 the chi^2 reward cap (2/alpha) leaves ~10% on 'leave' (see module doc)
    gamma: float = 0.95
    bc_warmup_steps: int = 50
    beta_anneal_steps: int = 100
    beta_final: float = 0.2
    buffer_size: int = 256
    rollouts_per_refresh: int = 32
    refresh_every: int = 4
    max_len_factor: int = 3  # training rollouts: at most 3 (n + 1) actions
    eval_max_len_factor: int = 10  # evaluation rollouts: long enough not to cut recoveries short
    eval_rollouts: int = 2000
    eval_eps: tuple = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
    seed: int = 0


# (name, kind, eta): the policies of panel (c)/(d)
VARIANTS = (
    ("MLE", "mle", 0.0),
    ("BC (MLE + <bkspc>), η=ETA", "bc", None),
    ("SM χ²-mix, η=0 (no <bkspc> in data)", "sm", 0.0),
    ("SM χ²-mix, η=ETA (paper recipe)", "sm", None),
)


@dataclass
class PolicyResult:
    name: str
    kind: str
    eta: float
    p_stay: list  # fraction of eval rollouts in distribution, per eval eps
    p_bkspc_offchain: list  # P(<bkspc> | c^k x), k = 0..n-1 (empty: no <bkspc> action)
    p_bkspc_onchain: float  # mean P(<bkspc> | c^k), k = 0..n
    p_leave_onchain: float  # mean P(x | c^k), k < n (the policy's own error, before the slips)
    bkspc_rate: float  # fraction of <bkspc> among the actions of rollouts at eps_train
    seconds: float
    history: dict = field(default_factory=dict)  # step -> mean P(<bkspc> | off-chain)


@dataclass
class EmpiricalResult:
    config: dict
    eval_eps: list
    exact_p_stay: list
    policies: list  # [PolicyResult]
    seconds: float

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["policies"] = [p.__dict__ for p in self.policies]
        return d


def _batch(trajs, states: ChainStates):
    """Algorithm A inputs of ``trajs`` = [(actions, labels or None, is_model)], collated, and the
    table row of every input (the tabular policy's "forward pass")."""
    import torch

    from seqmatch.actions import actions_to_inputs, collate

    tis, rows = [], []
    for acts, labels, _ in trajs:
        tis.append(actions_to_inputs(acts, bos_id=BOS, bkspc_id=BKSPC, eos_id=EOS, labels=labels))
        rows.append(states.keys_along(acts))
    batch = collate(tis, pad_id=PAD, is_model=[m for _, _, m in trajs])
    key = torch.zeros(batch.input_ids.shape, dtype=torch.long)
    for b, r in enumerate(rows):
        key[b, : len(r)] = torch.tensor(r)
    return batch, key


def _data(n: int, eta: float, batch_size: int, rng: np.random.Generator):
    """Data trajectories c^n <eos>, noised with rate eta: (actions, labels, is_model=False)."""
    from seqmatch.noise import add_backspace_noise

    clean = [C] * n + [EOS]
    out = []
    for _ in range(batch_size):
        a, lab = add_backspace_noise(clean, eta=eta, bkspc_id=BKSPC, noise_ids=[X], rng=rng)
        out.append((a, lab, False))
    return out


def train_policy(kind: str, eta: float, cfg: EmpiricalConfig, states: ChainStates, rng: np.random.Generator):
    """Train one tabular policy; returns (table, allowed actions, history).

    * ``mle``: cross-entropy on clean c^n <eos>, actions {c, x, <eos>} (no <bkspc> action).
    * ``bc``:  cross-entropy on data noised at rate ``eta`` (``seqmatch.losses.bc_loss``).
    * ``sm``:  BC alone for ``bc_warmup_steps``, then beta * BC + (1 - beta) * SM with
      ``seqmatch.losses.sequence_match_loss(divergence="chi2_mix")`` on data rows and replay-buffer
      rollouts sampled from the current policy under the eps_train slips; beta from
      ``seqmatch.losses.beta_at`` (1 -> beta_final).
    """
    import torch

    from seqmatch.losses import bc_loss, beta_at, sequence_match_loss

    n = cfg.n
    allowed = [C, X, EOS] if kind == "mle" else [C, X, EOS, BKSPC]
    col_mask = torch.full((N_ACTIONS,), float("-inf"))
    col_mask[allowed] = 0.0
    table = torch.zeros((states.n_rows, N_ACTIONS), requires_grad=True)
    opt = torch.optim.Adam([table], lr=cfg.lr)
    max_len = cfg.max_len_factor * (n + 1)
    buffer: list[list[int]] = []
    history: dict = {"step": [], "p_bkspc_off": [], "beta": []}
    for step in range(cfg.steps):
        beta = 1.0
        if kind == "sm":
            beta = beta_at(step, bc_warmup_steps=cfg.bc_warmup_steps, beta_anneal_steps=cfg.beta_anneal_steps,
                           beta_final=cfg.beta_final)
        data = _data(n, eta, cfg.batch_size, rng)
        model: list = []
        if beta < 1.0:
            if step % cfg.refresh_every == 0 or not buffer:
                probs = _probs(table, allowed)
                buffer.extend(rollouts(probs, states, eps=cfg.eps_train, rng=rng, max_len=max_len,
                                       count=cfg.rollouts_per_refresh))
                buffer = buffer[-cfg.buffer_size:]
            idx = rng.choice(len(buffer), size=cfg.batch_size, replace=len(buffer) < cfg.batch_size)
            model = [(buffer[i], None, True) for i in idx]
        batch, key = _batch(data + model, states)
        logits = table[key]
        nd = len(data)
        # MLE / BC: cross-entropy on the data rows' action labels (over the allowed actions)
        loss = bc_loss(logits[:nd] + col_mask, batch.labels[:nd])
        if model:
            out = sequence_match_loss(
                logits,
                batch.labels,
                state_mask=batch.state_mask,
                terminal=batch.terminal,
                last_index=batch.last_index,
                is_model=batch.is_model,
                prompt_len=batch.prompt_len,
                alpha=cfg.alpha,
                gamma=cfg.gamma,
                divergence="chi2_mix",
            )
            loss = beta * loss + (1.0 - beta) * out["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            p = _probs(table, allowed)
            history["step"].append(step)
            history["beta"].append(beta)
            history["p_bkspc_off"].append(float(np.mean([p[states.off(k), BKSPC] for k in range(n)])))
    return table, allowed, history


def run_empirical(cfg: EmpiricalConfig, variants=VARIANTS) -> EmpiricalResult:
    """Train each variant (same seed), then sample ``eval_rollouts`` trajectories per eval eps."""
    import torch

    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only add overhead
    try:
        return _run_empirical(cfg, variants, t0)
    finally:
        torch.set_num_threads(threads)


def _run_empirical(cfg: EmpiricalConfig, variants, t0: float) -> EmpiricalResult:
    import torch

    states = ChainStates(cfg.n)
    n = cfg.n
    eval_len = cfg.eval_max_len_factor * (n + 1)
    results = []
    for i, (name, kind, eta) in enumerate(variants):
        eta = cfg.eta if eta is None else eta
        name = name.replace("ETA", f"{cfg.eta:g}")
        t1 = time.time()
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng([cfg.seed, i])
        table, allowed, hist = train_policy(kind, eta, cfg, states, rng)
        probs = _probs(table, allowed)
        eval_rng = np.random.default_rng([cfg.seed, i, 1])
        p_stay_l, rate = [], float("nan")
        for e in cfg.eval_eps:
            ro = rollouts(probs, states, eps=e, rng=eval_rng, max_len=eval_len, count=cfg.eval_rollouts)
            p_stay_l.append(float(np.mean([in_distribution(a, n) for a in ro])))
            if abs(e - cfg.eps_train) < 1e-12:
                rate = float(np.mean([a == BKSPC for r in ro for a in r]))
        has_b = BKSPC in allowed
        results.append(PolicyResult(
            name=name, kind=kind, eta=float(eta), p_stay=p_stay_l,
            p_bkspc_offchain=[float(probs[states.off(k), BKSPC]) for k in range(n)] if has_b else [],
            p_bkspc_onchain=float(np.mean([probs[states.on(k), BKSPC] for k in range(n + 1)])),
            p_leave_onchain=float(np.mean([probs[states.on(k), X] for k in range(n)])),
            bkspc_rate=rate, seconds=time.time() - t1, history=hist,
        ))
    return EmpiricalResult(
        config={k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        eval_eps=list(cfg.eval_eps),
        exact_p_stay=[float(p_stay(e, n)) for e in cfg.eval_eps],
        policies=results,
        seconds=time.time() - t0,
    )


def make_figure(ns: Sequence[int], empirical: EmpiricalResult | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = np.linspace(0.0, 0.3, 301)[1:]
    emp = empirical is not None
    if emp:
        fig, axs = plt.subplots(2, 2, figsize=(11.5, 9.0))
        axes = axs.ravel()
    else:
        fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    ax = axes[0]
    top = 1e6
    from matplotlib.lines import Line2D

    styles = {"KL(P‖Q) = −n log(1−ε)": "-", "χ²(P‖Q) = (1−ε)^−n − 1": "--", "χ²(P‖(P+Q)/2) = (1−q)/(1+q)": ":"}
    for i, n in enumerate(ns):
        col = colors[i % len(colors)]
        ax.plot(eps, kl_forward(eps, n), color=col, ls="-")
        ax.plot(eps, np.minimum(chi2(eps, n), top * 10), color=col, ls="--")
        ax.plot(eps, chi2_mixture(eps, n), color=col, ls=":")
    ax.axhline(top, color="k", lw=2.5, alpha=0.6)
    ax.text(0.15, top * 1.6, "KL(Q‖P) = ∞ for every ε > 0 and n (drawn clipped)", ha="center", va="bottom",
            fontsize=8)
    handles = [Line2D([], [], color="0.2", ls=ls, label=lab) for lab, ls in styles.items()]
    handles += [Line2D([], [], color=colors[i % len(colors)], lw=4, label=f"n = {n}") for i, n in enumerate(ns)]
    ax.set_yscale("log")
    ax.set_ylim(1e-3, top * 8)
    ax.set_xlim(0, 0.3)
    ax.set_xlabel("per-step error ε")
    ax.set_ylabel("divergence")
    ax.set_title("(a) divergences between data P and model Q (exact)")
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.93), framealpha=0.9)

    ax = axes[1]
    for i, n in enumerate(ns):
        col = colors[i % len(colors)]
        ax.plot(eps, p_stay(eps, n), color=col, label=f"P(stay) = (1−ε)^n, n={n}")
        ax.plot(eps, 1.0 / (1.0 + chi2(eps, n)), color=col, ls="none", marker="o", ms=3, markevery=25,
                label=None if i else "1 / (1 + χ²(P‖Q))  (equal)")
    ax.set_xlim(0, 0.3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("per-step error ε")
    ax.set_ylabel("P(model's sequence stays in distribution)")
    ax.set_title("(b) probability of staying on the chain (exact)")
    ax.legend(fontsize=7)

    if emp:
        e = np.array(empirical.eval_eps)
        n = empirical.config["n"]
        ax = axes[2]
        fine = np.linspace(0, max(e.max(), 0.3), 200)
        ax.plot(fine, p_stay(fine, n), color="k", lw=1, label=f"exact (1−ε)^{n}")
        markers = "os^Dv"
        for j, pr in enumerate(empirical.policies):
            ax.plot(e, pr.p_stay, marker=markers[j % 5], ms=4, color=colors[j % len(colors)], label=pr.name,
                    ls="--" if pr.kind == "bc" else "-", zorder=3 if pr.kind == "bc" else 2)
        ax.axvline(empirical.config["eps_train"], color="0.6", ls=":", lw=1)
        ax.set_xlabel("per-step slip probability ε")
        ax.set_ylabel("fraction of sampled sequences ending in distribution")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"(c) tabular policies, chain n={n}, {empirical.config['eval_rollouts']} rollouts per point")
        ax.legend(fontsize=7, loc="lower left")

        ax = axes[3]
        for j, pr in enumerate(empirical.policies):
            h = pr.history
            if pr.p_bkspc_offchain and h.get("step"):
                ax.plot(h["step"], h["p_bkspc_off"], color=colors[j % len(colors)], label=pr.name,
                        ls="--" if pr.kind == "bc" else "-", zorder=3 if pr.kind == "bc" else 2)
        ax.text(0.5, 0.04, "MLE has no <bkspc> action: P = 0 and it cannot return to the chain",
                transform=ax.transAxes, ha="center", fontsize=8, color=colors[0])
        ax.axvline(empirical.config["bc_warmup_steps"], color="0.6", ls=":", lw=1)
        ax.text(empirical.config["bc_warmup_steps"], 0.15, " SM variants: BC alone before this step,\n"
                " then β·BC + (1−β)·SM, β: 1 → 0.2", fontsize=7, color="0.4")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training step")
        ax.set_ylabel("mean P(<bkspc> | off-chain state c^k x)")
        ax.set_title("(d) learning to backspace out of the off-chain state")
        ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m seqmatch.toychain", description=__doc__.split("\n")[0])
    ap.add_argument("--out-pdf", required=True)
    ap.add_argument("--out-png", required=True)
    ap.add_argument("--out-json", default=None, help="the numbers behind the figure")
    ap.add_argument("--chain-lengths", "--n", dest="chain_lengths", type=int, nargs="+", default=[10, 20, 50],
                    help="chain lengths of panels (a), (b)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--empirical-steps", type=int, default=EmpiricalConfig.steps,
                    help="training steps of the tabular policies (0: exact panels only)")
    ap.add_argument("--empirical-n", type=int, default=EmpiricalConfig.n)
    ap.add_argument("--eps-train", type=float, default=EmpiricalConfig.eps_train)
    ap.add_argument("--eta", type=float, default=EmpiricalConfig.eta)
    ap.add_argument("--eval-rollouts", type=int, default=EmpiricalConfig.eval_rollouts)
    add_config_option(ap)  # config.yaml's figure1 section
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)

    emp = None
    if args.empirical_steps > 0:
        # BC warm-up and beta annealing keep their proportions (50 and 100 of 400 steps)
        d = EmpiricalConfig()
        cfg = EmpiricalConfig(n=args.empirical_n, steps=args.empirical_steps, seed=args.seed,
                              eps_train=args.eps_train, eta=args.eta, eval_rollouts=args.eval_rollouts,
                              bc_warmup_steps=max(1, round(args.empirical_steps * d.bc_warmup_steps / d.steps)),
                              beta_anneal_steps=max(1, round(args.empirical_steps * d.beta_anneal_steps / d.steps)))
        emp = run_empirical(cfg)
        for pr in emp.policies:
            pb = np.mean(pr.p_bkspc_offchain) if pr.p_bkspc_offchain else 0.0
            print(f"{pr.name:45s} P(stay) " + " ".join(f"{x:.3f}" for x in pr.p_stay)
                  + f" | P(<bkspc>|off) {pb:.3f} | {pr.seconds:.1f}s")
        print(f"{'exact (1-eps)^n':45s} P(stay) " + " ".join(f"{x:.3f}" for x in emp.exact_p_stay)
              + f"  at eps = {emp.eval_eps}")
    fig = make_figure(args.chain_lengths, emp)
    atomic_savefig(fig, args.out_pdf)
    atomic_savefig(fig, args.out_png)
    if args.out_json:
        eps_grid = [0.01, 0.05, 0.1, 0.2, 0.3]
        exact = {
            str(n): {
                "eps": eps_grid,
                "kl_forward": [float(kl_forward(e, n)) for e in eps_grid],
                "kl_reverse": "inf",
                "chi2": [float(chi2(e, n)) for e in eps_grid],
                "chi2_mixture": [float(chi2_mixture(e, n)) for e in eps_grid],
                "p_stay": [float(p_stay(e, n)) for e in eps_grid],
            }
            for n in args.chain_lengths
        }
        payload = {"exact": exact, "empirical": emp.to_dict() if emp else None}
        atomic_write_text(args.out_json, json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
