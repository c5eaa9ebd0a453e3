"""Text: MAUVE, n-gram entropy, diversity and held-out perplexity (Table 2), and completions of
prompts whose last token is random (Table 8).

    from seqmatch.evaluate import text_metrics, heldout_perplexity
    res = text_metrics(model, tokenizer, rows, prompt_tokens=32, new_tokens=32, n_samples=100)
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from seqmatch.evaluate import common
from seqmatch.evaluate.common import continuation, decode_actions, encode, ids_of, ordinary_token_ids

TABLE8_COLUMNS = ("prompt", "completion")


def text_rows(rows: Sequence[dict]) -> list[dict]:
    """Rows with ``prompt`` and ``completion``; a ``text`` row becomes one with an empty prompt."""
    return [r if "prompt" in r or "completion" in r else {"prompt": "", "completion": r["text"]} for r in rows]


def truncate_references(refs: Sequence[Sequence[int]], gens: Sequence[Sequence[int]]) -> list[list[int]]:
    """Cut reference i to the token length of generation i (pairwise equal lengths for MAUVE)."""
    if len(refs) != len(gens):
        raise ValueError(f"{len(refs)} references but {len(gens)} generations")
    return [list(r[: len(g)]) for r, g in zip(refs, gens)]


def text_pool(rows: Sequence[dict], tok, *, prompt_tokens: int, new_tokens: int) -> list[dict]:
    """Held-out texts long enough for a P-token prompt and a G-token reference, in file order:
    ``{"row": i, "prompt_ids": first P tokens, "ref_ids": the next G tokens}``."""
    pool = []
    for i, r in enumerate(rows):
        ids = encode(tok, r.get("prompt", "") + r.get("completion", ""))
        if len(ids) >= prompt_tokens + new_tokens:
            pool.append({"row": i, "prompt_ids": ids[:prompt_tokens],
                         "ref_ids": ids[prompt_tokens:prompt_tokens + new_tokens]})
    return pool


def draw_indices(n_pool: int, n_samples: int, *, seed: int, draw: int) -> list[int]:
    """Indices of draw ``draw``: ``n_samples`` distinct pool items (all of them when the pool is
    smaller), chosen with ``numpy.random.default_rng([seed, draw])``."""
    rng = np.random.default_rng([int(seed), int(draw)])
    k = min(int(n_samples), n_pool)
    return sorted(int(i) for i in rng.choice(n_pool, size=k, replace=False))


def replace_last_token(prompt_ids: Sequence[int], candidates: Sequence[int], rng: np.random.Generator) -> tuple[list[int], int, int]:
    """``prompt_ids`` with the last token replaced by a uniform draw from ``candidates`` other than
    the original. Returns ``(new_ids, original_id, new_id)``."""
    if not prompt_ids:
        raise ValueError("empty prompt")
    orig = int(prompt_ids[-1])
    cands = [int(c) for c in candidates if int(c) != orig]
    if not cands:
        raise ValueError("no candidate token differs from the original")
    new = cands[int(rng.integers(len(cands)))]
    return list(prompt_ids[:-1]) + [new], orig, new



def heldout_perplexity(model, tokenizer, rows: Sequence[dict], *, batch_size: int | None = 16,
                       mask_prompt: bool = False) -> dict:
    """``seqmatch.metrics.perplexity`` of clean rows (``prompt + completion + <eos>``, cut to the
    model's context; a cut row is not terminal), the prompt's tokens left out with ``mask_prompt``;
    with ``n_rows``. ``perplexity`` None for no rows."""
    from seqmatch.actions import actions_to_inputs, collate
    from seqmatch.metrics import perplexity

    ids = ids_of(model, tokenizer)
    limit = int(getattr(model, "max_positions", 1 << 30))
    trajs = []
    for r in rows:
        prompt = encode(tokenizer, r.get("prompt", ""))
        acts = prompt + encode(tokenizer, r.get("completion", "")) + [ids["eos_id"]]
        acts = acts[: max(limit - 1, 1)]  # L + 1 inputs must fit the context; a cut row is not terminal
        trajs.append(actions_to_inputs(acts, bos_id=ids["bos_id"], bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"],
                                       prompt_len=min(len(prompt), len(acts))))
    if not trajs:
        return {"perplexity": None, "n_tokens": 0, "n_rows": 0}
    bs = batch_size or 16
    impl = getattr(model, "attn_implementation", "sdpa")
    impl = impl if impl in ("sdpa", "eager") else "sdpa"
    batches = (collate(trajs[i:i + bs], pad_id=ids["pad_id"], attn_implementation=impl)
               for i in range(0, len(trajs), bs))
    res = perplexity(model, batches, device=getattr(model, "device", None), mask_prompt=mask_prompt)
    res["n_rows"] = len(trajs)
    return res


def text_metrics(model, tokenizer, rows: Sequence[dict], *, prompt_tokens: int = 256, new_tokens: int = 256,
                 n_samples: int = 1000, draws: int = 2, decoding: str = "sample", contrastive_k: int = 5,
                 penalty_alpha: float = 0.6, featurizer: str = "minilm", mauve_seed: int = 25,
                 ngram_reduction: str = "per_generation", heldout_ppl_rows: int = 200, seed: int = 0,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, batch_size: int | None = 32,
                 device: str = "cpu") -> dict:
    """Table 2's metrics of held-out texts ``rows`` (``prompt`` + ``completion``, or ``text``):
    prompts are the first ``prompt_tokens`` tokens of texts with at least ``prompt_tokens +
    new_tokens``; each of ``draws`` draws samples ``n_samples`` of them (``draw_indices``) and
    generates (``decoding`` sample, or contrastive search); MAUVE against the true next tokens cut
    pairwise to each generation's length, n-gram entropy (n = 4), diversity, mean ± sd over draws;
    perplexity on the first ``heldout_ppl_rows`` rows (None for contrastive search). The defaults
    are the paper's (§6.2, App. E)."""
    from seqmatch.metrics import bkspc_rate, diversity, featurize, mauve_score, mean_sd, ngram_entropy

    rows = text_rows(rows)
    ids = ids_of(model, tokenizer)
    P, G = prompt_tokens, new_tokens
    pool = text_pool(rows, tokenizer, prompt_tokens=P, new_tokens=G)
    if len(pool) < 2:
        raise SystemExit(f"only {len(pool)} held-out texts have >= {P} + {G} tokens: need at least 2")
    per_draw, all_actions, example = [], [], None
    for d in range(draws):
        items = [pool[i] for i in draw_indices(len(pool), n_samples, seed=seed, draw=d)]
        prompts = [it["prompt_ids"] for it in items]
        t0 = time.perf_counter()
        if decoding == "contrastive":
            from seqmatch.sampling import contrastive_search

            out = contrastive_search(model, prompts, k=contrastive_k, penalty_alpha=penalty_alpha,
                                     max_new_tokens=common.effective_max_new_tokens(model, prompts, G),
                                     eos_id=ids["eos_id"], bos_id=ids["bos_id"], batch_size=batch_size)
        else:
            out = common.sample(model, tokenizer, prompts, max_new_tokens=G, seed=seed * 1000 + d,
                                temperature=temperature, top_p=top_p, top_k=top_k, batch_size=batch_size)
        gen_seconds = time.perf_counter() - t0
        all_actions += out.actions
        gen_ids = [continuation(s, p) for s, p in zip(out.states, prompts)]
        ref_ids = truncate_references([it["ref_ids"] for it in items], gen_ids)
        gen_texts = [tokenizer.decode(g) for g in gen_ids]
        ref_texts = [tokenizer.decode(r) for r in ref_ids]
        if example is None and items:
            example = {"prompt": tokenizer.decode(prompts[0]), "generation": gen_texts[0], "reference": ref_texts[0],
                       "actions": decode_actions(tokenizer, out.actions[0], bkspc_id=ids["bkspc_id"],
                                                 eos_id=ids["eos_id"])}
        p_feat = featurize(gen_texts, featurizer=featurizer, max_tokens=G, device=device)
        q_feat = featurize(ref_texts, featurizer=featurizer, max_tokens=G, device=device)
        mv = mauve_score(p_feat, q_feat, seed=mauve_seed, featurizer=featurizer, max_tokens=G)
        ent = ngram_entropy(gen_texts, n=4, per_generation=ngram_reduction == "per_generation")
        ent_pooled = ngram_entropy(gen_texts, n=4, per_generation=False)
        div = diversity(gen_texts)
        per_draw.append({
            "draw": d,
            "rows": [it["row"] for it in items],
            "mauve": mv["mauve"],
            "ngram_entropy": ent["ngram_entropy"],
            "ngram_entropy_pooled": ent_pooled["ngram_entropy"],
            "diversity": div["diversity"],
            "rep_2": div["rep_2"], "rep_3": div["rep_3"], "rep_4": div["rep_4"],
            "mean_generation_tokens": float(np.mean([len(g) for g in gen_ids])),
            "empty_generations": int(sum(1 for g in gen_ids if not g)),
            "generation_seconds": gen_seconds,
            "mauve_detail": mv,
        })
    m_mean, m_sd = mean_sd([x["mauve"] for x in per_draw])
    e_mean, e_sd = mean_sd([x["ngram_entropy"] for x in per_draw])
    ep_mean, ep_sd = mean_sd([x["ngram_entropy_pooled"] for x in per_draw])
    d_mean, d_sd = mean_sd([x["diversity"] for x in per_draw])
    ppl = ppl_detail = None
    if decoding != "contrastive" and heldout_ppl_rows > 0:
        ppl_detail = heldout_perplexity(model, tokenizer, rows[:heldout_ppl_rows], batch_size=batch_size)
        ppl = ppl_detail["perplexity"]
    rate = bkspc_rate(all_actions, ids["bkspc_id"])
    settings = {k: v for k, v in per_draw[0]["mauve_detail"].items()
                if k not in ("mauve", "mauve_star", "frontier_integral")}
    settings.update({"features": "seqmatch.metrics.featurize", "reference": "true next tokens, cut pairwise "
                     "to the generation's token length"})
    return {
        "task": "text",
        "decoding": decoding,
        "mauve_mean": m_mean, "mauve_sd": m_sd,
        "ngram_entropy_mean": e_mean, "ngram_entropy_sd": e_sd,
        "ngram_entropy_reduction": ngram_reduction, "ngram_n": 4,
        "ngram_entropy_pooled_mean": ep_mean, "ngram_entropy_pooled_sd": ep_sd,
        "diversity_mean": d_mean, "diversity_sd": d_sd,
        "perplexity": ppl,
        "perplexity_detail": ppl_detail,
        "bkspc_rate": rate["action_rate"],
        "seq_bkspc_frac": rate["sequence_rate"],
        "featurizer": featurizer,
        "mauve_settings": settings,
        "n_samples": min(n_samples, len(pool)),
        "n_samples_requested": n_samples,
        "n_pool": len(pool),
        "draws": draws,
        "prompt_tokens": P,
        "new_tokens": G,
        "sampling": (common.sampling_settings(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                                              max_new_tokens=G) if decoding == "sample"
                     else {"contrastive_k": contrastive_k, "penalty_alpha": penalty_alpha, "max_new_tokens": G}),
        "per_draw": per_draw,
        "example": example,
    }


def text_mistakes(model, tokenizer, rows: Sequence[dict], *, n_examples: int = 3, prompt_tokens: int = 32,
                  new_tokens: int = 32, seed: int = 0, temperature: float = 1.0, top_p: float = 1.0,
                  top_k: int = 0, batch_size: int | None = 32) -> list[dict]:
    """Table 8: the first ``n_examples`` held-out texts with at least ``prompt_tokens`` tokens; the
    prompt is their first tokens with the last one replaced by a uniformly random ordinary token
    (``replace_last_token``); rows of ``TABLE8_COLUMNS``, the actions with ``<bkspc>`` written out."""
    ids = ids_of(model, tokenizer)
    pool = text_pool(text_rows(rows), tokenizer, prompt_tokens=prompt_tokens, new_tokens=0)[:n_examples]
    rng = np.random.default_rng(seed)
    cands = ordinary_token_ids(tokenizer, getattr(model, "vocab_size", None))
    prompts = [replace_last_token(it["prompt_ids"], cands, rng)[0] for it in pool]
    if not prompts:
        raise SystemExit(f"no held-out text has {prompt_tokens} tokens")
    out = common.sample(model, tokenizer, prompts, max_new_tokens=new_tokens, seed=seed, temperature=temperature,
                        top_p=top_p, top_k=top_k, batch_size=batch_size)
    return [{"prompt": tokenizer.decode(p),
             "completion": decode_actions(tokenizer, a, bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"])}
            for p, a in zip(prompts, out.actions)]
