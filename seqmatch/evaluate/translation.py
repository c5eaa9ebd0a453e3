"""Translation: sacrebleu BLEU of sampled translations (Table 5).

    from seqmatch.evaluate import bleu_score
    res = bleu_score(model, tokenizer, [{"en": "The cat sleeps", "fr": "Le chat dort"}])
"""

from __future__ import annotations

from typing import Sequence

from seqmatch.evaluate import common
from seqmatch.evaluate.common import continuation, decode_actions, encode, ids_of


def bleu_score(model, tokenizer, rows: Sequence[dict], *, max_new_tokens: int = 96, seed: int = 0,
               temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, batch_size: int | None = 32) -> dict:
    """Corpus BLEU (``seqmatch.metrics.bleu``, sacrebleu's defaults) of the model's translations:
    the prompt is the row's ``prompt`` (default ``"English: {en}\\nFrench:"``, as
    ``seqmatch.data.translation_row`` writes it), the hypothesis what the model wrote after it
    (``<bkspc>`` applied, stripped), the reference ``fr``. With ``bkspc_rate``, ``seq_bkspc_frac``,
    the sampling settings and the first 5 ``examples``."""
    from seqmatch.metrics import bkspc_rate, bleu

    ids = ids_of(model, tokenizer)
    prompts_text = [r.get("prompt") or f"English: {r['en']}\nFrench:" for r in rows]
    prompts = [encode(tokenizer, p) for p in prompts_text]
    out = common.sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed,
                        temperature=temperature, top_p=top_p, top_k=top_k, batch_size=batch_size)
    hyps = [tokenizer.decode(continuation(s, p)).strip() for s, p in zip(out.states, prompts)]
    refs = [str(r["fr"]) for r in rows]
    b = bleu(hyps, refs)
    rate = bkspc_rate(out.actions, ids["bkspc_id"])
    return {
        "task": "translation",
        "bleu": b["score"],
        "signature": b["signature"],
        "n": b["n"],
        "bleu_detail": b,
        "bkspc_rate": rate["action_rate"],
        "seq_bkspc_frac": rate["sequence_rate"],
        "sampling": common.sampling_settings(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                                             max_new_tokens=max_new_tokens,
                                             effective=getattr(out, "max_new_tokens", None)),
        "examples": [
            {"prompt": p, "reference": ref, "hypothesis": h,
             "actions": decode_actions(tokenizer, a, bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"])}
            for p, ref, h, a in list(zip(prompts_text, refs, hyps, out.actions))[:5]
        ],
    }
