"""Batched sampling with a ``<bkspc>`` action on a KV cache, and contrastive search (Su et al. 2022).

**Cache layout (DESIGN §3).** Prompts are left-padded to a common length P and prefilled as
``[pad .. pad, <bos>, prompt]`` (slots 0..P). The cache then grows by exactly one slot per step for
every row, so all rows share one cache length. Each row keeps a stack of the slots that make up its
current state; the query of a step attends to exactly those slots (a per-step 4-D bool mask
[B, 1, 1, slots] built from an ``alive`` matrix; padding slots are never alive):

* insert token ``a``: the new slot holds ``a`` at position ``len(state)``;
* ``<bkspc>``: the deleted slot is switched off, and so is the slot of the token that is now last;
  the new slot holds a *copy* of that token with that token's position id. Its output gives the
  logits of the shortened state (this is Algorithm A of ``seqmatch.actions`` run online, so
  sampling and training see the same inputs). At ``<bos>`` the backspace deletes nothing and the
  copy is a copy of ``<bos>`` at position 0.

Rows that are done (``<eos>``, or out of forced actions) keep feeding a padding token into a slot
that nobody sees; its query sees only itself. The cache is never compacted: memory is
O(P + max_new_tokens) slots per row.

**Outputs.** ``SampleOutput.actions[b]``: the generated actions (``<bkspc>`` included, the final
``<eos>`` included when the row finished). ``.states[b]``: the state in which the row stopped,
without ``<bos>`` and without the final ``<eos>``, i.e. ``apply_backspaces(prompt + actions)``
minus the ``<eos>``; a backspace can delete prompt tokens, never ``<bos>``. ``.finished[b]``: the
row emitted ``<eos>``.

**Randomness.** Actions are drawn with ``torch.multinomial`` from ``generator`` (a
``torch.Generator``; a CPU generator works with a model on GPU: probabilities are moved to it).
Same seed, same prompts, same ``batch_size`` -> same samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

__all__ = ["SampleOutput", "generate", "contrastive_search", "process_logits"]


@dataclass
class SampleOutput:
    actions: list[list[int]]
    states: list[list[int]]
    finished: list[bool]
    prompts: list[list[int]] = field(default_factory=list)
    step_logits: list[torch.Tensor] | None = None  # per row [n_actions, V]: logits each action was drawn from

    def __len__(self) -> int:
        return len(self.actions)


def process_logits(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering of [B, V] logits; removed entries
    become ``-inf``. Conventions as in transformers: top-k keeps every logit >= the k-th largest;
    top-p keeps the smallest set of most likely tokens whose probability reaches ``top_p`` (at
    least one token)."""
    x = logits.float()
    if temperature != 1.0:
        x = x / temperature
    V = x.shape[-1]
    if top_k and 0 < top_k < V:
        kth = torch.topk(x, top_k, dim=-1).values[..., -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        sorted_x, order = torch.sort(x, dim=-1, descending=True)
        p = torch.softmax(sorted_x, dim=-1)
        mass_before = torch.cumsum(p, dim=-1) - p
        remove_sorted = mass_before >= top_p
        remove_sorted[..., 0] = False
        remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
        x = x.masked_fill(remove, float("-inf"))
    return x


def _draw(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator,
          suppress: torch.Tensor | None = None) -> torch.Tensor:
    if suppress is not None:
        logits = logits.index_fill(-1, suppress, float("-inf"))
    if temperature == 0:
        return logits.argmax(-1)
    x = process_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    probs = torch.softmax(x, dim=-1)
    if generator is not None and probs.device != generator.device:
        return torch.multinomial(probs.to(generator.device), 1, generator=generator).squeeze(-1).to(logits.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _Rows:
    """Per-row bookkeeping: slot stacks, state tokens, the ``alive`` slot matrix."""

    def __init__(self, prompts: list[list[int]], *, bos_id: int, pad_id: int, extra_slots: int, device):
        self.B = len(prompts)
        self.P = max(len(p) for p in prompts)
        n0 = self.P + 1
        self.n_slots = n0
        self.alive = torch.zeros((self.B, n0 + extra_slots), dtype=torch.bool, device=device)
        ids = torch.full((self.B, n0), pad_id, dtype=torch.long)
        pos = torch.zeros((self.B, n0), dtype=torch.long)
        self.stacks: list[list[int]] = []
        self.tokens: list[list[int]] = []
        for b, p in enumerate(prompts):
            left = self.P - len(p)
            ids[b, left] = bos_id
            ids[b, left + 1 :] = torch.tensor(p, dtype=torch.long)
            pos[b, left:] = torch.arange(len(p) + 1)
            self.stacks.append(list(range(left, n0)))
            self.tokens.append([bos_id] + [int(t) for t in p])
            self.alive[b, left:n0] = True
        self.prefill_ids = ids.to(device)
        self.prefill_pos = pos.to(device)

    def prefill_mask(self) -> torch.Tensor:
        n = self.n_slots
        alive = self.alive[:, :n]
        causal = torch.ones((n, n), dtype=torch.bool, device=alive.device).tril()
        vis = causal.unsqueeze(0) & alive.unsqueeze(1) & alive.unsqueeze(2)
        eye = torch.eye(n, dtype=torch.bool, device=alive.device)
        vis = vis | (eye.unsqueeze(0) & ~alive.unsqueeze(2))  # padding queries see themselves only
        return vis.unsqueeze(1)

    def step(self, actions: list[int | None], bkspc_id: int, pad_id: int):
        """Apply one action per row (``None``: row is done) at the new slot; return the step's
        input ids [B], position ids [B] and the 4-D mask [B, 1, 1, slots]."""
        k = self.n_slots
        self.n_slots += 1
        ids, pos, kill_r, kill_c, live = [], [], [], [], []
        for b, a in enumerate(actions):
            if a is None:
                ids.append(pad_id)
                pos.append(0)
                continue
            st, tk = self.stacks[b], self.tokens[b]
            if a == bkspc_id:
                if len(st) > 1:
                    kill_r.append(b)
                    kill_c.append(st.pop())
                    tk.pop()
                kill_r.append(b)
                kill_c.append(st[-1])
                st[-1] = k
                ids.append(tk[-1])
            else:
                st.append(k)
                tk.append(int(a))
                ids.append(int(a))
            pos.append(len(st) - 1)
            live.append(b)
        dev = self.alive.device
        if kill_r:
            self.alive[torch.tensor(kill_r, device=dev), torch.tensor(kill_c, device=dev)] = False
        if live:
            self.alive[torch.tensor(live, device=dev), k] = True
        vis = self.alive[:, : k + 1].clone()
        vis[:, k] = True  # done rows: the query sees itself only (its slot stays dead)
        return (
            torch.tensor(ids, dtype=torch.long, device=dev),
            torch.tensor(pos, dtype=torch.long, device=dev),
            vis[:, None, None, :],
        )


def _check_inputs(model, prompts, max_new_tokens: int) -> list[list[int]]:
    prompts = [[int(t) for t in p] for p in prompts]
    if not prompts:
        raise ValueError("no prompts")
    if max_new_tokens < 0:
        raise ValueError("max_new_tokens must be >= 0")
    longest = max(len(p) for p in prompts) + max_new_tokens
    limit = getattr(model, "max_positions", None)
    if limit is not None and longest >= limit:
        raise ValueError(
            f"prompt length + max_new_tokens = {longest} needs position ids up to {longest}, "
            f"but the model has {limit} positions"
        )
    return prompts


def _chunks(n: int, batch_size: int | None):
    bs = n if not batch_size else int(batch_size)
    for i in range(0, n, bs):
        yield i, min(n, i + bs)


@torch.no_grad()
def generate(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    eos_id: int,
    bkspc_id: int,
    bos_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    forced_actions: Sequence[Sequence[int]] | None = None,
    return_step_logits: bool = False,
    pad_id: int | None = None,
    suppress_ids: Sequence[int] = (),
) -> SampleOutput:
    """Sample up to ``max_new_tokens`` actions per prompt (``<bkspc>`` allowed), with a KV cache.

    ``prompts``: token-id lists without ``<bos>``, any lengths. ``temperature=0``: greedy.
    ``forced_actions[b]`` (tests, teacher forcing): row b takes these actions instead of sampling
    and stops when they run out (or at ``<eos>``). ``return_step_logits``: also return, per row,
    the model logits (before temperature / filtering) each action was chosen from.
    ``batch_size``: rows per forward pass (default: all prompts at once).
    ``suppress_ids``: tokens never sampled (e.g. ``<bos>``, ``<pad>``); default none, so the
    draws follow the model's distribution exactly.
    """
    prompts = _check_inputs(model, prompts, max_new_tokens)
    if forced_actions is not None and len(forced_actions) != len(prompts):
        raise ValueError("forced_actions needs one action list per prompt")
    pad_id = model.pad_id if pad_id is None else pad_id
    out = SampleOutput(actions=[], states=[], finished=[], prompts=prompts, step_logits=[] if return_step_logits else None)
    was_training = model.training
    model.eval()
    try:
        for lo, hi in _chunks(len(prompts), batch_size):
            forced = None if forced_actions is None else [list(map(int, f)) for f in forced_actions[lo:hi]]
            _generate_chunk(
                model, prompts[lo:hi], out, forced=forced, max_new_tokens=max_new_tokens, eos_id=eos_id,
                bkspc_id=bkspc_id, bos_id=bos_id, pad_id=pad_id, temperature=temperature, top_p=top_p,
                top_k=top_k, generator=generator, return_step_logits=return_step_logits,
                suppress=torch.tensor(sorted(set(map(int, suppress_ids))), dtype=torch.long, device=model.device)
                if suppress_ids else None,
            )
    finally:
        model.train(was_training)
    return out


def _generate_chunk(model, prompts, out: SampleOutput, *, forced, max_new_tokens, eos_id, bkspc_id, bos_id,
                    pad_id, temperature, top_p, top_k, generator, return_step_logits, suppress=None):
    device = model.device
    rows = _Rows(prompts, bos_id=bos_id, pad_id=pad_id, extra_slots=max_new_tokens, device=device)
    B = rows.B
    actions: list[list[int]] = [[] for _ in range(B)]
    finished = [False] * B
    done = [False] * B
    logs: list[list[torch.Tensor]] = [[] for _ in range(B)]
    cache = None
    logits = None
    if max_new_tokens > 0:
        res = model(input_ids=rows.prefill_ids, position_ids=rows.prefill_pos, attention_mask=rows.prefill_mask(),
                    use_cache=True)
        cache, logits = res.past_key_values, res.logits[:, -1]
    for t in range(max_new_tokens):
        if forced is not None:
            for b in range(B):
                if not done[b] and t >= len(forced[b]):
                    done[b] = True
        if all(done):
            break
        if forced is None:
            drawn = _draw(logits, temperature, top_k, top_p, generator, suppress).tolist()
        step: list[int | None] = []
        for b in range(B):
            if done[b]:
                step.append(None)
                continue
            a = forced[b][t] if forced is not None else int(drawn[b])
            step.append(a)
            actions[b].append(a)
            if return_step_logits:
                logs[b].append(logits[b].detach().cpu())
        ids, pos, mask = rows.step(step, bkspc_id, pad_id)
        for b, a in enumerate(step):
            if a is not None and a == eos_id:
                finished[b] = done[b] = True
        if t == max_new_tokens - 1 or all(done):
            break  # no logits are needed after the last action
        res = model(input_ids=ids[:, None], position_ids=pos[:, None], attention_mask=mask,
                    past_key_values=cache, use_cache=True)
        cache, logits = res.past_key_values, res.logits[:, -1]
    for b in range(B):
        state = rows.tokens[b][1:]
        if finished[b] and state and state[-1] == eos_id:
            state = state[:-1]
        out.actions.append(actions[b])
        out.states.append(state)
        out.finished.append(finished[b])
        if return_step_logits:
            V = logits.shape[-1] if logits is not None else 0
            out.step_logits.append(torch.stack(logs[b]) if logs[b] else torch.zeros((0, V)))


# ------------------------------------------------------------------------------------------------
# contrastive search


def _repeat_cache(cache, k: int) -> None:
    if hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(k)
    else:  # pragma: no cover - legacy tuple caches
        raise TypeError(f"unsupported cache type {type(cache).__name__}")


def _select_cache(cache, index: torch.Tensor) -> None:
    cache.batch_select_indices(index)


@torch.no_grad()
def contrastive_search(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    k: int,
    penalty_alpha: float,
    max_new_tokens: int,
    eos_id: int,
    bos_id: int,
    batch_size: int | None = None,
    bkspc_id: int | None = None,
    pad_id: int | None = None,
) -> SampleOutput:
    """Contrastive search (Su et al. 2022), deterministic.

    At each step the k most likely next tokens v are scored by
    ``(1 - penalty_alpha) * p(v | x) - penalty_alpha * max_j cos(h_v, h_j)``, where h_v is the
    last-layer hidden state of v appended to the context and h_j those of the context (``<bos>``
    and prompt included, as in transformers' former implementation); the best is kept. ``p`` is
    softmax over the vocabulary with ``<bkspc>`` banned (this is a decoding method for MLE models:
    the row for ``<bkspc>`` is never chosen). The k candidates run as one batch of B*k rows on a
    copy of the cache; the chosen row's cache is kept, so each step costs one forward of B*k
    single-token rows (``batch_size`` bounds B).
    """
    prompts = _check_inputs(model, prompts, max_new_tokens)
    if k < 1:
        raise ValueError("k must be >= 1")
    bkspc_id = model.bkspc_id if bkspc_id is None else bkspc_id
    pad_id = model.pad_id if pad_id is None else pad_id
    out = SampleOutput(actions=[], states=[], finished=[], prompts=prompts)
    was_training = model.training
    model.eval()
    try:
        for lo, hi in _chunks(len(prompts), batch_size):
            _cs_chunk(model, prompts[lo:hi], out, k=k, alpha=penalty_alpha, max_new_tokens=max_new_tokens,
                      eos_id=eos_id, bos_id=bos_id, bkspc_id=bkspc_id, pad_id=pad_id)
    finally:
        model.train(was_training)
    return out


def _cs_chunk(model, prompts, out, *, k, alpha, max_new_tokens, eos_id, bos_id, bkspc_id, pad_id):
    device = model.device
    rows = _Rows(prompts, bos_id=bos_id, pad_id=pad_id, extra_slots=max_new_tokens, device=device)
    B = rows.B
    actions: list[list[int]] = [[] for _ in range(B)]
    finished = [False] * B
    if max_new_tokens == 0:
        for b in range(B):
            out.actions.append([]), out.states.append(rows.tokens[b][1:]), out.finished.append(False)
        return
    res = model(input_ids=rows.prefill_ids, position_ids=rows.prefill_pos, attention_mask=rows.prefill_mask(),
                use_cache=True)
    cache, logits = res.past_key_values, res.logits[:, -1]
    d = res.hidden_states.shape[-1]
    ctx = torch.zeros((B, rows.alive.shape[1], d), dtype=torch.float32, device=device)
    ctx[:, : rows.n_slots] = torch.nn.functional.normalize(res.hidden_states.float(), dim=-1)
    kk = min(k, logits.shape[-1] - 1)
    for t in range(max_new_tokens):
        if all(finished):
            break
        scores = logits.float().clone()
        if 0 <= bkspc_id < scores.shape[-1]:
            scores[:, bkspc_id] = float("-inf")
        probs = torch.softmax(scores, dim=-1)
        cand_p, top_ids = torch.topk(probs, kk, dim=-1)  # [B, kk]
        S = rows.n_slots
        _repeat_cache(cache, kk)
        pos_next = torch.tensor([len(st) for st in rows.stacks], dtype=torch.long, device=device)
        vis = torch.cat([rows.alive[:, :S], torch.ones((B, 1), dtype=torch.bool, device=device)], dim=1)
        cand = model(
            input_ids=top_ids.reshape(-1, 1),
            position_ids=pos_next.repeat_interleave(kk).unsqueeze(1),
            attention_mask=vis.repeat_interleave(kk, dim=0)[:, None, None, :],
            past_key_values=cache,
            use_cache=True,
        )
        h = torch.nn.functional.normalize(cand.hidden_states[:, -1].float(), dim=-1).view(B, kk, d)
        cos = torch.einsum("bkd,bsd->bks", h, ctx[:, :S])
        cos = cos.masked_fill(~rows.alive[:, None, :S], float("-inf"))
        penalty = cos.max(dim=-1).values  # [B, kk]
        score = (1.0 - alpha) * cand_p - alpha * penalty
        best = score.argmax(dim=-1)  # ties -> the more likely candidate (topk order)
        sel = torch.arange(B, device=device) * kk + best
        _select_cache(cache, sel)
        chosen = top_ids.gather(1, best[:, None]).squeeze(1)
        logits = cand.logits[sel, -1]
        ctx[:, S] = h[torch.arange(B, device=device), best]
        step: list[int | None] = []
        for b in range(B):
            if finished[b]:
                step.append(None)
                continue
            a = int(chosen[b])
            actions[b].append(a)
            step.append(a)
        rows.step(step, bkspc_id, pad_id)
        for b, a in enumerate(step):
            if a is not None and a == eos_id:
                finished[b] = True
    for b in range(B):
        state = rows.tokens[b][1:]
        if finished[b] and state and state[-1] == eos_id:
            state = state[:-1]
        out.actions.append(actions[b])
        out.states.append(state)
        out.finished.append(finished[b])
