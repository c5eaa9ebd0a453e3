"""``seqmatch.generate``: text in, text out, with ``<bkspc>`` applied.

    import seqmatch
    model, tokenizer = seqmatch.load_model("out/model")
    out = seqmatch.generate(model, tokenizer, ["What is 12 + 30? Solution:"], max_new_tokens=32)
    out.texts[0]      # what the model wrote after the prompt, every <bkspc> applied
    out.actions[0]    # the raw actions, "<bkspc>" and "<eos>" written out

Plain ``transformers`` ``generate`` cannot do this: a backspace changes the state, not only the
next-token distribution, so the KV cache slot of the deleted token must be switched off and the
token now last fed again at its own position (``seqmatch.sampling``, which this wraps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class GenerationOutput:
    """One entry per prompt."""

    texts: list[str]  # what the model wrote after the prompt (backspaces applied, no <eos>)
    final_texts: list[str]  # the whole final state, prompt included (the model may delete into it)
    actions: list[str]  # the generated actions as text, <bkspc> and <eos> written out
    action_ids: list[list[int]]  # the generated actions (token ids, <bkspc> and <eos> included)
    finished: list[bool]  # the row ended with <eos> (else it ran out of max_new_tokens)


def as_policy(model, tokenizer):
    """A ``SeqMatchLM`` from a ``SeqMatchLM``, a saved model's directory (``seqmatch.load_model``) or
    a plain transformers causal LM with ``<bkspc>`` in its vocabulary (e.g. this project's saved
    model loaded by ``AutoModelForCausalLM.from_pretrained``: no offset head, which changes no
    sampled action)."""
    from pathlib import Path

    from seqmatch.actions import BKSPC_TOKEN
    from seqmatch.model import ModelConfig, SeqMatchLM, _max_positions, load_model

    if isinstance(model, SeqMatchLM):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model, is_trainable=False)[0].eval()
    bkspc = tokenizer.convert_tokens_to_ids(BKSPC_TOKEN)
    if bkspc is None or bkspc == tokenizer.unk_token_id or bkspc >= model.get_output_embeddings().weight.shape[0]:
        raise ValueError(f"the tokenizer has no {BKSPC_TOKEN} token the model can emit: not a seqmatch model")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return SeqMatchLM(model, ModelConfig(offset_head=False), bkspc_id=bkspc, bos_id=tokenizer.bos_token_id,
                      eos_id=tokenizer.eos_token_id, pad_id=pad,
                      max_positions=_max_positions(model.config, 1 << 30)).eval()


def generate(model, tokenizer, prompts: str | Sequence[str], *, max_new_tokens: int = 128, temperature: float = 1.0,
             top_p: float = 1.0, top_k: int = 0, seed: int = 0, batch_size: int | None = None) -> GenerationOutput:
    """Sample a continuation of each prompt with the ``<bkspc>`` action (batched, KV cache; rows
    backspace independently); the prompt's tokens are ``tokenizer(prompt, add_special_tokens=False)``
    after ``<bos>``, as in training. ``model``: a ``SeqMatchLM``, a saved model's directory, or the
    transformers model of one (``as_policy``). ``temperature`` 0 is greedy; top-k/top-p as in
    transformers; ``seed`` seeds a ``torch.Generator`` (same seed, prompts and batch size: same
    output). ``max_new_tokens`` counts actions, ``<bkspc>`` included."""
    import torch

    from seqmatch.evaluate.common import continuation, decode_actions, encode, sample

    policy = as_policy(model, tokenizer)
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    ids = [encode(tokenizer, t) for t in texts]
    with torch.no_grad():
        out = sample(policy, tokenizer, ids, max_new_tokens=max_new_tokens, seed=seed, temperature=temperature,
                     top_p=top_p, top_k=top_k, batch_size=batch_size)
    return GenerationOutput(
        texts=[tokenizer.decode(continuation(s, p)) for s, p in zip(out.states, ids)],
        final_texts=[tokenizer.decode(s) for s in out.states],
        actions=[decode_actions(tokenizer, a, bkspc_id=policy.bkspc_id, eos_id=policy.eos_id) for a in out.actions],
        action_ids=[list(a) for a in out.actions],
        finished=list(out.finished),
    )
