"""What every evaluation shares: token helpers, loading a model, sampling with ``<bkspc>`` and the
sampling settings recorded in each result (conventions: ``seqmatch.evaluate``)."""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence


def data_source(rows: Sequence[dict], test_file: str) -> str:
    """The data source named by the rows (``source`` field), else by ``meta.json`` beside the file."""
    names = list(dict.fromkeys(str(r["source"]) for r in rows if r.get("source")))
    if names:
        return "; ".join(names)
    meta = os.path.join(os.path.dirname(os.path.abspath(test_file)), "meta.json")
    if os.path.exists(meta):
        with open(meta, encoding="utf-8") as f:
            m = json.load(f)
        return str(m.get("source", "unknown"))
    return "unknown"


# ---------------------------------------------------------------------------------------------
# tokens


def encode(tok, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False))


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def continuation(state: Sequence[int], prompt: Sequence[int]) -> list[int]:
    """The tokens of the final state that the model wrote: everything after the longest common
    prefix of ``state`` and ``prompt`` (the model may have backspaced into the prompt)."""
    return list(state[common_prefix_len(state, prompt):])


def decode_actions(tok, actions: Sequence[int], *, bkspc_id: int, eos_id: int | None = None) -> str:
    """Actions as text: runs of ordinary tokens decoded together, ``<bkspc>``/``<eos>`` written out."""
    out: list[str] = []
    run: list[int] = []

    def flush():
        if run:
            out.append(tok.decode(run))
            run.clear()

    for a in actions:
        a = int(a)
        if a == bkspc_id:
            flush()
            out.append("<bkspc>")
        elif eos_id is not None and a == eos_id:
            flush()
            out.append("<eos>")
        else:
            run.append(a)
    flush()
    return "".join(out)


def ordinary_token_ids(tok, vocab_size: int | None = None) -> list[int]:
    """Ids of the tokenizer's non-special tokens (below the model's vocabulary size)."""
    special = set(int(i) for i in tok.all_special_ids)
    n = len(tok) if vocab_size is None else min(len(tok), int(vocab_size))
    return [i for i in range(n) if i not in special]


# ---------------------------------------------------------------------------------------------
# model plumbing


def device_of(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load(model_dir: str, device: str):
    """``(model, tokenizer)`` of a saved model (``seqmatch.model.load_model``), in eval mode."""
    from seqmatch.model import load_model

    model, tok = load_model(model_dir, device=device_of(device), is_trainable=False)
    model.eval()
    return model, tok


def ids_of(model, tok) -> dict:
    from seqmatch.actions import BKSPC_TOKEN

    bk = getattr(model, "bkspc_id", None)
    if bk is None:
        bk = tok.convert_tokens_to_ids(BKSPC_TOKEN)
    return {
        "bos_id": int(getattr(model, "bos_id", tok.bos_token_id)),
        "eos_id": int(getattr(model, "eos_id", tok.eos_token_id)),
        "pad_id": int(getattr(model, "pad_id", tok.pad_token_id)),
        "bkspc_id": int(bk),
    }


def sample(model, tok, prompts, *, max_new_tokens: int, seed: int, temperature: float = 1.0, top_p: float = 1.0,
           top_k: int = 0, batch_size: int | None = None):
    """``seqmatch.sampling.generate`` on token prompts with a seeded generator; ``max_new_tokens``
    lowered to what the model's positions allow (``effective_max_new_tokens``, recorded on the
    output as ``.max_new_tokens``)."""
    import torch

    from seqmatch.sampling import generate

    ids = ids_of(model, tok)
    gen = torch.Generator().manual_seed(int(seed))
    eff = effective_max_new_tokens(model, prompts, max_new_tokens)
    out = generate(model, prompts, max_new_tokens=eff, eos_id=ids["eos_id"], bkspc_id=ids["bkspc_id"],
                   bos_id=ids["bos_id"], temperature=temperature, top_p=top_p, top_k=top_k, generator=gen,
                   batch_size=batch_size)
    out.max_new_tokens = eff
    return out


def effective_max_new_tokens(model, prompts, max_new_tokens: int) -> int:
    """``max_new_tokens``, lowered (with a warning) so that the longest prompt plus the actions fit
    the model's position ids (the sampler refuses longer runs)."""
    limit = getattr(model, "max_positions", None)
    if limit is None or not prompts:
        return int(max_new_tokens)
    room = int(limit) - 1 - max(len(p) for p in prompts)
    if room < 1:
        raise SystemExit(f"the longest prompt ({max(len(p) for p in prompts)} tokens) leaves no room in the "
                         f"model's {limit} positions")
    if room < max_new_tokens:
        print(f"warning: max_new_tokens {max_new_tokens} -> {room} (the model has {limit} positions)",
              file=sys.stderr)
        return room
    return int(max_new_tokens)


def sampling_settings(*, temperature: float, top_p: float, top_k: int, seed: int, max_new_tokens: int,
                      effective: int | None = None) -> dict:
    return {"temperature": temperature, "top_p": top_p, "top_k": top_k, "max_new_tokens": max_new_tokens,
            "max_new_tokens_effective": effective if effective is not None else max_new_tokens, "seed": seed}
