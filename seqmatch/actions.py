"""Actions with a ``<bkspc>`` backspace, and their single-pass model inputs (paper §4.1, App. A).

A trajectory is a list of actions a_1..a_L: vocabulary tokens (insert) or ``<bkspc>`` (delete the
last token; at ``<bos>`` it does nothing). The state after i actions is a token list. To train on
all L+1 states in one forward pass, Algorithm A turns the actions into L+1 *inputs*:

* input 0 is ``<bos>``; input i (i >= 1) is the token that is last in the state after action a_i:
  the inserted token, or, after ``<bkspc>``, a *copy* of the token that is now last, carrying that
  token's position id;
* ``labels[i] = a_{i+1}``, the action taken in state i (``-100`` for the last input);
* input i attends exactly to the inputs that make up state i.

Once an input leaves the state it never comes back, so each input j is visible to the queries i
with ``j <= i < death[j]``. The mask is therefore O(L) data (``death``); the dense [L+1, L+1]
matrix is built from it with tensor operations only when an attention kernel needs it.

Example (Figure 2): actions ``Apples are blue <bkspc> green`` give inputs
``<bos> Apples are blue are green`` with position ids ``0 1 2 3 2 3``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

IGNORE_INDEX = -100
BKSPC_TOKEN = "<bkspc>"  # the backspace action's token string in every tokenizer we build or extend


def apply_backspaces(actions: Sequence[int], bkspc_id: int) -> list[int]:
    """The final state (without ``<bos>``) after taking ``actions`` from the empty state."""
    state: list[int] = []
    for a in actions:
        if a == bkspc_id:
            if state:
                state.pop()
        else:
            state.append(int(a))
    return state


@dataclass
class TrajectoryInputs:
    """Single-pass inputs of one trajectory; every tensor is 1-D of length L+1.

    ``terminal``: the final state is terminal (the trajectory ended with ``<eos>``, or was forced
    to end there by the over-length rule), so the loss adds its terminal terms.
    ``prompt_len``: number of leading actions that belong to the prompt; ``labels[:prompt_len]``
    are prompt actions (masked by prompt-masked losses and by the on-policy regularizer).
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    death: torch.Tensor
    terminal: bool = False
    prompt_len: int = 0

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def mask(self) -> torch.Tensor:
        """Bool [L+1, L+1]; ``mask[i, j]`` is True when query i attends to input j."""
        return visibility_mask(self.death)


def visibility_mask(death: torch.Tensor) -> torch.Tensor:
    """Dense visibility from death times: ``mask[..., i, j] = (j <= i) & (i < death[..., j])``.

    ``death`` may be [T] or [B, T]; the result is [T, T] or [B, T, T].
    """
    T = death.shape[-1]
    idx = torch.arange(T, device=death.device)
    q = idx.view(T, 1)  # query index i
    k = idx.view(1, T)  # key index j
    return (k <= q) & (q < death.unsqueeze(-2))


def actions_to_inputs(
    actions: Sequence[int],
    *,
    bos_id: int,
    bkspc_id: int,
    eos_id: int | None = None,
    labels: Sequence[int] | None = None,
    prompt_len: int = 0,
    terminal: bool | None = None,
) -> TrajectoryInputs:
    """Algorithm A: the single-pass inputs for actions a_1..a_L.

    ``labels`` (length L) overrides the action *label* of each step while ``actions`` still drive
    the states. Noise augmentation uses it (the noise token is environment dynamics, not an action
    to learn) and so does the over-length rule (the real action is kept, the next state is
    ``<eos>``). ``terminal`` defaults to "the last action is ``eos_id``".

    Runs a stack over the actions (O(L)); a backspace at input k kills the deleted input and the
    input it copies, both at k, and the copy takes the copied input's place on the stack.
    """
    L = len(actions)
    if labels is not None and len(labels) != L:
        raise ValueError(f"labels has length {len(labels)}, expected {L} (one per action)")
    input_ids = [bos_id] * (L + 1)
    position_ids = [0] * (L + 1)
    death = [L + 1] * (L + 1)
    stack = [0]  # input indices that make up the current state, <bos> first
    for k, a in enumerate(actions, start=1):
        a = int(a)
        if a == bkspc_id:
            if len(stack) > 1:
                death[stack.pop()] = k
            top = stack[-1]  # the token now last in the state: copy it into input k
            death[top] = k
            stack[-1] = k
            input_ids[k] = input_ids[top]
            position_ids[k] = position_ids[top]
        else:
            position_ids[k] = len(stack)
            input_ids[k] = a
            stack.append(k)
    lab = list(actions if labels is None else labels) + [IGNORE_INDEX]
    if terminal is None:
        terminal = eos_id is not None and L > 0 and int(actions[-1]) == eos_id
    return TrajectoryInputs(
        input_ids=torch.tensor(input_ids, dtype=torch.long),
        position_ids=torch.tensor(position_ids, dtype=torch.long),
        labels=torch.tensor(lab, dtype=torch.long),
        death=torch.tensor(death, dtype=torch.long),
        terminal=bool(terminal),
        prompt_len=int(prompt_len),
    )


def truncate_actions(
    actions: Sequence[int],
    labels: Sequence[int] | None,
    max_inputs: int,
    eos_id: int,
) -> tuple[list[int], list[int], bool]:
    """The over-length rule (§4.2): keep at most ``max_inputs`` inputs (``<bos>`` included).

    A trajectory that would be longer keeps the action label of its last kept step, but the next
    state is forced to ``<eos>`` (the last action becomes ``eos_id`` for the *states* only), and it
    counts as terminal. Returns ``(actions, labels, truncated)``.
    """
    labels = list(actions if labels is None else labels)
    actions = [int(a) for a in actions]
    if len(actions) + 1 <= max_inputs:
        return actions, labels, False
    if max_inputs < 2:
        raise ValueError(f"max_inputs must be >= 2, got {max_inputs}")
    n = max_inputs - 1  # number of actions kept
    actions, labels = actions[:n], labels[:n]
    actions[-1] = eos_id
    return actions, labels, True


@dataclass
class Batch:
    """A padded batch of trajectories (right padding).

    ``attention_mask`` is [B, 1, T, T] in the form the attention implementation needs (see
    ``collate``). ``state_mask`` [B, T] marks real (non-padding) inputs. ``last_index`` [B] is the
    index of each row's final state. ``is_model`` [B] marks model-rollout rows (replay buffer).
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    state_mask: torch.Tensor
    terminal: torch.Tensor
    last_index: torch.Tensor
    prompt_len: torch.Tensor
    is_model: torch.Tensor
    death: torch.Tensor

    def to(self, device) -> "Batch":
        return Batch(**{k: v.to(device) for k, v in self.__dict__.items()})

    def model_inputs(self) -> dict:
        """Keyword arguments for a Hugging Face causal LM's forward."""
        return dict(input_ids=self.input_ids, position_ids=self.position_ids, attention_mask=self.attention_mask)


def attention_mask_4d(
    death: torch.Tensor,
    state_mask: torch.Tensor,
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """[B, 1, T, T] mask from death times, for ``attn_implementation``.

    * ``eager`` adds the mask to the scores, so it must be additive float: 0 where visible,
      ``finfo(dtype).min`` elsewhere (not -inf: a fully masked row would give NaN). A bool mask
      under eager is silently wrong in transformers 5.x.
    * ``sdpa`` (and ``flash``/``flex`` callers that convert themselves) take a bool mask,
      True = attend.
    Padding queries see only themselves so that no row is empty.
    """
    # two [B, T, T] passes, not six: a padding key is never visible (its death is its own index,
    # so j <= i < death[j] is empty), and a padding query gets its own diagonal entry; equal to
    # (visibility_mask(death) & real keys) | (eye & padding queries)
    T = death.shape[-1]
    idx = torch.arange(T, device=death.device)
    death = torch.where(state_mask, death, idx)
    lower = torch.ones(T, T, dtype=torch.bool, device=death.device).tril_()
    vis = (idx.view(T, 1) < death.unsqueeze(-2)) & lower
    vis.diagonal(dim1=-2, dim2=-1).logical_or_(~state_mask)
    vis = vis.unsqueeze(1)
    if attn_implementation == "eager":
        out = torch.zeros(vis.shape, dtype=dtype, device=death.device)
        return out.masked_fill_(~vis, torch.finfo(dtype).min)
    if attn_implementation in ("sdpa", "flex_attention", "bool"):
        return vis
    raise ValueError(
        f"attn_implementation={attn_implementation!r}: expected 'sdpa' or 'eager' "
        "(flex_attention is a GPU-only path)"
    )


def collate(
    trajs: Sequence[TrajectoryInputs],
    *,
    pad_id: int,
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
    is_model: Sequence[bool] | None = None,
    pad_to: int | None = None,
) -> Batch:
    """Pad trajectories on the right into a ``Batch`` with a 4-D mask built from ``death``."""
    if not trajs:
        raise ValueError("collate needs at least one trajectory")
    B = len(trajs)
    T = max(len(t) for t in trajs)
    if pad_to is not None:
        T = max(T, pad_to)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    position_ids = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    # a padded input "dies" at once (death = its own index): it is never visible to anyone
    death = torch.arange(T).repeat(B, 1)
    state_mask = torch.zeros((B, T), dtype=torch.bool)
    for b, t in enumerate(trajs):
        n = len(t)
        input_ids[b, :n] = t.input_ids
        position_ids[b, :n] = t.position_ids
        labels[b, :n] = t.labels
        death[b, :n] = t.death.clamp(max=T)
        state_mask[b, :n] = True
    lengths = state_mask.sum(1)
    return Batch(
        input_ids=input_ids,
        position_ids=position_ids,
        labels=labels,
        attention_mask=attention_mask_4d(death, state_mask, attn_implementation, dtype),
        state_mask=state_mask,
        terminal=torch.tensor([t.terminal for t in trajs], dtype=torch.bool),
        last_index=lengths - 1,
        prompt_len=torch.tensor([t.prompt_len for t in trajs], dtype=torch.long),
        is_model=torch.tensor(list(is_model) if is_model is not None else [False] * B, dtype=torch.bool),
        death=death,
    )
