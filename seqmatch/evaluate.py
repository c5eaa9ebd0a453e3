"""Evaluator CLI: sample from a trained model (with ``<bkspc>``) and compute the paper's metrics.

Subcommands (the Snakemake rules of ``workflow/rules/evaluate.smk`` call them)::

    python -m seqmatch.evaluate arithmetic --model-dir DIR --test-file F --out OUT.json \
        --generations GEN.jsonl [--n-eval N --max-new-tokens 64 --seed S --batch-size B --temperature 1.0]
    python -m seqmatch.evaluate text --model-dir DIR --test-file F --out OUT.json \
        [--decoding sample|contrastive --contrastive-k 5 --penalty-alpha 0.6] --prompt-tokens P --new-tokens G \
        --n-samples N --draws 2 --featurizer minilm|gpt2-large|PATH --seed S [--heldout-ppl-rows N]
    python -m seqmatch.evaluate translation --model-dir DIR --test-file F --out OUT.json [--n-eval N]
    python -m seqmatch.evaluate mistakes --model-dir DIR --test-file F --out OUT.csv --n-examples 4 \
        --seed S [--summary OUT.json]
    python -m seqmatch.evaluate text-mistakes --model-dir DIR --test-file F --out OUT.csv --n-examples 3 \
        --prompt-tokens P --new-tokens G
    python -m seqmatch.evaluate arithmetic --config FILE    # any option's value from a JSON/YAML file

``--config FILE`` holds option values under their names with ``_`` (those of config.yaml's
``tasks.<task>.eval``; ``seqmatch.options``); flags given as well override it. The workflow writes one
per job.

Conventions shared by every subcommand:

* Prompts are ``tok.encode(text, add_special_tokens=False)``; the sampler adds ``<bos>``. A row's
  training trajectory was ``tok(prompt) + tok(completion) + [eos]`` (docs/contracts.md), so the
  model sees evaluation prompts exactly as it saw training prompts.
* **Sampling** (``seqmatch.sampling.generate``): temperature 1, top-p 1, no top-k by default, the
  paper's generation settings (App. E: "we set the temperature to 1 and the top-p sampling to 1,
  with no top-k sampling"); ``--temperature 0`` is greedy. The seed fixes a ``torch.Generator``.
* **Final state**: the sampler's ``states`` (prompt included, backspaces applied, no ``<bos>``, no
  final ``<eos>``). The model may backspace into the prompt; the *continuation* is what follows the
  longest common prefix of the final state and the prompt (``continuation``).
* **Actions shown** (generations files, Tables 1 and 8): runs of ordinary tokens decoded with the
  tokenizer, ``<bkspc>`` and ``<eos>`` written out (``decode_actions``).
* Every output is written atomically (temporary file in the same directory, then ``os.replace``).

Per subcommand:

* ``arithmetic``: accuracy = ``seqmatch.metrics.arithmetic_accuracy`` on the decoded final states
  (exact match after the last ``Solution:``). ``bkspc_rate`` = fraction of generated actions that
  are ``<bkspc>``; ``seq_bkspc_frac`` = fraction of generations with at least one.
* ``text`` (Table 2): prompts are the first P tokens of held-out texts with at least P + G tokens;
  the reference of a prompt is the true next G tokens of the same text. Each draw d samples
  ``n_samples`` texts without replacement with ``numpy.random.default_rng([seed, d])`` and samples
  generations with torch seed ``seed * 1000 + d``. MAUVE compares generations (continuations)
  with references **of the same token length, pair by pair**: reference i is cut to the number of
  tokens of generation i (a generation is shorter than G when it stopped at ``<eos>`` or used
  ``<bkspc>``, which spends actions without adding tokens), so length alone cannot separate the
  two sets. Features: ``seqmatch.metrics.featurize`` (``max_tokens = G``), score
  ``seqmatch.metrics.mauve_score``. n-gram entropy (``n = 4``) and diversity on the whitespace
  words of the continuations; the entropy is averaged per generation by default (the magnitude of
  the paper's Table 2, ~4.6 nats; ``--ngram-reduction pooled`` for the pooled one, which is also
  reported). Mean and sd over draws with ``seqmatch.metrics.mean_sd`` (sample sd). Perplexity on the
  first ``--heldout-ppl-rows`` clean held-out rows (``seqmatch.metrics.perplexity``, softmax over the
  full output vocabulary incl. ``<bkspc>``), trajectories cut to the model's context; ``null`` for
  contrastive search (the paper reports N/A: it is a decoding method, the model is MLE's).
* ``translation`` (Table 5): prompt ``row["prompt"]``, hypothesis = decoded continuation (stripped),
  reference ``row["fr"]``; sacrebleu corpus BLEU (``seqmatch.metrics.bleu``).
* ``mistakes`` (Table 1): for the first n test questions, the prompt is ``"{question} Solution:"``
  followed by a *mistake*: the answer's leading non-digit characters (space, sign) and 1-4 random
  digits of the question's base, never a prefix of the true answer (``mistake_text``). The seed
  draws the mistakes (and seeds the sampler): one seed gives every model the same mistakes.
  ``--summary``: the share of completions whose final state is correct (``recovery_summary``:
  ``arithmetic_accuracy`` on the whole final state, as ``arithmetic``) and whose first action is
  ``<bkspc>``.
* ``text-mistakes`` (Table 8): the first n held-out texts with at least P tokens; the prompt is
  their first P tokens with the last one replaced by a uniformly random ordinary vocabulary token
  (special tokens and the original token excluded; ``replace_last_token``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Sequence

import numpy as np

from seqmatch.options import add_config_option, parse_args
from seqmatch.io import read_jsonl, to_json, write_csv, write_json, write_jsonl

# ---------------------------------------------------------------------------------------------
# I/O (atomic writers: seqmatch.io)


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


_LEAD = re.compile(r"^(\D*)")


def mistake_text(completion: str, base: int, rng: np.random.Generator, n_digits: int | None = None) -> str:
    """A wrong start of the solution: the completion's leading non-digit characters (the space and
    a sign, e.g. ``" -"``) followed by ``n_digits`` (default 1-4, random) digits in ``base``, drawn
    until the result is *not* a prefix of the true completion (after whitespace removal)."""
    base = int(base)
    if not 2 <= base <= 10:
        raise ValueError(f"base must be in 2..10 (digit tokens), got {base}")
    lead = _LEAD.match(completion).group(1)
    truth = "".join(completion.split())
    for _ in range(1000):
        k = int(rng.integers(1, 5)) if n_digits is None else int(n_digits)
        digits = "".join(str(int(d)) for d in rng.integers(0, base, size=k))
        text = lead + digits
        if not truth.startswith("".join(text.split())):
            return text
    raise RuntimeError("could not draw a mistake that differs from the answer")


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


# ---------------------------------------------------------------------------------------------
# model plumbing


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load(model_dir: str, device: str):
    from seqmatch.model import load_model

    model, tok = load_model(model_dir, device=_device(device), is_trainable=False)
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


def sample(model, tok, prompts, args, *, max_new_tokens: int, seed: int):
    import torch

    from seqmatch.sampling import generate

    ids = ids_of(model, tok)
    gen = torch.Generator().manual_seed(int(seed))
    eff = effective_max_new_tokens(model, prompts, max_new_tokens)
    out = generate(
        model,
        prompts,
        max_new_tokens=eff,
        eos_id=ids["eos_id"],
        bkspc_id=ids["bkspc_id"],
        bos_id=ids["bos_id"],
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        generator=gen,
        batch_size=args.batch_size,
    )
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


def sampling_settings(args, max_new_tokens: int, effective: int | None = None) -> dict:
    return {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
            "max_new_tokens": max_new_tokens, "max_new_tokens_effective": effective if effective is not None
            else max_new_tokens, "seed": args.seed}


def _common(model_dir: str, test_file: str, rows: Sequence[dict]) -> dict:
    return {"model_dir": model_dir, "test_file": test_file, "source": data_source(rows, test_file)}


# ---------------------------------------------------------------------------------------------
# subcommands


def cmd_arithmetic(args) -> dict:
    from seqmatch.metrics import arithmetic_accuracy, bkspc_rate

    rows = read_jsonl(args.test_file)
    if args.n_eval is not None:
        rows = rows[: args.n_eval]
    model, tok = load(args.model_dir, args.device)
    ids = ids_of(model, tok)
    prompts = [encode(tok, r["prompt"]) for r in rows]
    t0 = time.perf_counter()
    out = sample(model, tok, prompts, args, max_new_tokens=args.max_new_tokens, seed=args.seed)
    seconds = time.perf_counter() - t0
    # no clean-up of spaces: answers whose spaces count (answer_normalization strip, exact)
    finals = [tok.decode(s, clean_up_tokenization_spaces=False) for s in out.states]
    answers = [str(r["answer"]) for r in rows]
    acc = arithmetic_accuracy(finals, answers, args.answer_normalization)
    rate = bkspc_rate(out.actions, ids["bkspc_id"])
    gens = []
    for i, r in enumerate(rows):
        gens.append({
            "index": i,
            "prompt": r["prompt"],
            "answer": r["answer"],
            "actions": decode_actions(tok, out.actions[i], bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"]),
            "n_actions": len(out.actions[i]),
            "n_bkspc": sum(1 for a in out.actions[i] if a == ids["bkspc_id"]),
            "final_text": finals[i],
            "prediction": acc["predictions"][i],
            "correct": bool(acc["correct"][i]),
            "finished": bool(out.finished[i]),
        })
    write_jsonl(args.generations, gens)
    tasks = list(dict.fromkeys(str(r.get("task", "arithmetic")) for r in rows)) or ["arithmetic"]
    result = {
        "task": "; ".join(tasks),
        "accuracy": acc["accuracy"],
        "n": acc["n"],
        "n_correct": acc["n_correct"],
        "answer_normalization": args.answer_normalization,
        "bkspc_rate": rate["action_rate"],
        "seq_bkspc_frac": rate["sequence_rate"],
        "bkspc_per_sequence": rate["mean_per_sequence"],
        "finished_frac": float(np.mean(out.finished)) if out.finished else None,
        **_common(args.model_dir, args.test_file, rows),
        "sampling": sampling_settings(args, args.max_new_tokens, getattr(out, "max_new_tokens", None)),
        "generation_seconds": seconds,
    }
    write_json(args.out, result)
    return result


def _heldout_perplexity(model, tok, rows, n_rows: int, batch_size: int | None) -> dict:
    from seqmatch.actions import actions_to_inputs, collate
    from seqmatch.metrics import perplexity

    ids = ids_of(model, tok)
    limit = int(getattr(model, "max_positions", 1 << 30))
    trajs = []
    for r in rows[:n_rows]:
        acts = encode(tok, r.get("prompt", "")) + encode(tok, r.get("completion", "")) + [ids["eos_id"]]
        acts = acts[: max(limit - 1, 1)]  # L + 1 inputs must fit the context; a cut row is not terminal
        trajs.append(actions_to_inputs(acts, bos_id=ids["bos_id"], bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"]))
    if not trajs:
        return {"perplexity": None, "n_tokens": 0, "n_rows": 0}
    bs = batch_size or 16
    impl = getattr(model, "attn_implementation", "sdpa")
    impl = impl if impl in ("sdpa", "eager") else "sdpa"
    batches = (collate(trajs[i:i + bs], pad_id=ids["pad_id"], attn_implementation=impl)
               for i in range(0, len(trajs), bs))
    res = perplexity(model, batches, device=getattr(model, "device", None))
    res["n_rows"] = len(trajs)
    return res


def cmd_text(args) -> dict:
    from seqmatch.metrics import bkspc_rate, diversity, featurize, mauve_score, mean_sd, ngram_entropy

    rows = read_jsonl(args.test_file)
    model, tok = load(args.model_dir, args.device)
    ids = ids_of(model, tok)
    P, G = args.prompt_tokens, args.new_tokens
    pool = text_pool(rows, tok, prompt_tokens=P, new_tokens=G)
    if len(pool) < 2:
        raise SystemExit(f"only {len(pool)} held-out texts have >= {P} + {G} tokens: need at least 2")
    device = _device(args.device)
    per_draw = []
    all_actions = []
    example = None
    for d in range(args.draws):
        idx = draw_indices(len(pool), args.n_samples, seed=args.seed, draw=d)
        items = [pool[i] for i in idx]
        prompts = [it["prompt_ids"] for it in items]
        t0 = time.perf_counter()
        if args.decoding == "contrastive":
            from seqmatch.sampling import contrastive_search

            out = contrastive_search(model, prompts, k=args.contrastive_k, penalty_alpha=args.penalty_alpha,
                                     max_new_tokens=effective_max_new_tokens(model, prompts, G),
                                     eos_id=ids["eos_id"], bos_id=ids["bos_id"], batch_size=args.batch_size)
        else:
            out = sample(model, tok, prompts, args, max_new_tokens=G, seed=args.seed * 1000 + d)
        gen_seconds = time.perf_counter() - t0
        all_actions += out.actions
        gen_ids = [continuation(s, p) for s, p in zip(out.states, prompts)]
        ref_ids = truncate_references([it["ref_ids"] for it in items], gen_ids)
        gen_texts = [tok.decode(g) for g in gen_ids]
        ref_texts = [tok.decode(r) for r in ref_ids]
        if example is None and items:
            example = {"prompt": tok.decode(prompts[0]), "generation": gen_texts[0], "reference": ref_texts[0],
                       "actions": decode_actions(tok, out.actions[0], bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"])}
        p_feat = featurize(gen_texts, featurizer=args.featurizer, max_tokens=G, device=device)
        q_feat = featurize(ref_texts, featurizer=args.featurizer, max_tokens=G, device=device)
        mv = mauve_score(p_feat, q_feat, seed=args.mauve_seed, featurizer=args.featurizer, max_tokens=G)
        ent = ngram_entropy(gen_texts, n=4, per_generation=args.ngram_reduction == "per_generation")
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
    ppl = None
    ppl_detail = None
    if args.decoding != "contrastive" and args.heldout_ppl_rows > 0:
        ppl_detail = _heldout_perplexity(model, tok, rows, args.heldout_ppl_rows, args.batch_size)
        ppl = ppl_detail["perplexity"]
    rate = bkspc_rate(all_actions, ids["bkspc_id"])
    settings = {k: v for k, v in per_draw[0]["mauve_detail"].items()
                if k not in ("mauve", "mauve_star", "frontier_integral")}
    settings.update({"features": "seqmatch.metrics.featurize", "reference": "true next tokens, cut pairwise "
                     "to the generation's token length"})
    result = {
        "task": "text",
        "decoding": args.decoding,
        "mauve_mean": m_mean, "mauve_sd": m_sd,
        "ngram_entropy_mean": e_mean, "ngram_entropy_sd": e_sd,
        "ngram_entropy_reduction": args.ngram_reduction, "ngram_n": 4,
        "ngram_entropy_pooled_mean": ep_mean, "ngram_entropy_pooled_sd": ep_sd,
        "diversity_mean": d_mean, "diversity_sd": d_sd,
        "perplexity": ppl,
        "perplexity_detail": ppl_detail,
        "bkspc_rate": rate["action_rate"],
        "seq_bkspc_frac": rate["sequence_rate"],
        "featurizer": args.featurizer,
        "mauve_settings": settings,
        "n_samples": min(args.n_samples, len(pool)),
        "n_samples_requested": args.n_samples,
        "n_pool": len(pool),
        "draws": args.draws,
        "prompt_tokens": P,
        "new_tokens": G,
        "sampling": (sampling_settings(args, G) if args.decoding == "sample"
                     else {"contrastive_k": args.contrastive_k, "penalty_alpha": args.penalty_alpha, "max_new_tokens": G}),
        **_common(args.model_dir, args.test_file, rows),
        "per_draw": per_draw,
        "example": example,
    }
    write_json(args.out, result)
    return result


def cmd_translation(args) -> dict:
    from seqmatch.metrics import bkspc_rate, bleu

    rows = read_jsonl(args.test_file)
    if args.n_eval is not None:
        rows = rows[: args.n_eval]
    model, tok = load(args.model_dir, args.device)
    ids = ids_of(model, tok)
    prompts = [encode(tok, r["prompt"]) for r in rows]
    out = sample(model, tok, prompts, args, max_new_tokens=args.max_new_tokens, seed=args.seed)
    hyps = [tok.decode(continuation(s, p)).strip() for s, p in zip(out.states, prompts)]
    refs = [str(r["fr"]) for r in rows]
    b = bleu(hyps, refs)
    rate = bkspc_rate(out.actions, ids["bkspc_id"])
    result = {
        "task": "translation",
        "bleu": b["score"],
        "signature": b["signature"],
        "n": b["n"],
        "bleu_detail": b,
        "bkspc_rate": rate["action_rate"],
        "seq_bkspc_frac": rate["sequence_rate"],
        **_common(args.model_dir, args.test_file, rows),
        "sampling": sampling_settings(args, args.max_new_tokens, getattr(out, "max_new_tokens", None)),
        "examples": [
            {"prompt": r["prompt"], "reference": ref, "hypothesis": h,
             "actions": decode_actions(tok, a, bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"])}
            for r, ref, h, a in list(zip(rows, refs, hyps, out.actions))[:5]
        ],
    }
    write_json(args.out, result)
    return result


TABLE1_COLUMNS = ("ground_truth_qa", "prompt_with_mistake", "completion_actions", "final_state")
TABLE8_COLUMNS = ("prompt", "completion")


def recovery_summary(final_texts: Sequence[str], answers: Sequence[str], actions: Sequence[Sequence[int]],
                     bkspc_id: int) -> dict:
    """Mistake recovery over mistake-prompted completions (Table 1, per run).

    ``final_state_correct``: share whose final state (decoded, prompt included, backspaces applied)
    holds the true answer, judged by ``seqmatch.metrics.arithmetic_accuracy`` exactly as test
    accuracy is. ``first_action_bkspc``: share whose first generated action is ``<bkspc>`` (the
    model deletes the mistake before writing anything). Shares are NaN for no completions.
    """
    from seqmatch.metrics import arithmetic_accuracy, bkspc_rate

    if not len(final_texts) == len(answers) == len(actions):
        raise ValueError(f"{len(final_texts)} final states, {len(answers)} answers, {len(actions)} action lists")
    acc = arithmetic_accuracy(final_texts, answers)
    n = acc["n"]
    n_first = sum(1 for a in actions if len(a) and int(a[0]) == bkspc_id)
    rate = bkspc_rate(actions, bkspc_id)
    return {
        "n": n,
        "final_state_correct": acc["accuracy"],
        "first_action_bkspc": n_first / n if n else float("nan"),
        "n_final_state_correct": acc["n_correct"],
        "n_first_action_bkspc": n_first,
        "bkspc_rate": rate["action_rate"],
        "seq_bkspc_frac": rate["sequence_rate"],
        "correct": acc["correct"],
    }


def cmd_mistakes(args) -> list[dict]:
    rows = read_jsonl(args.test_file)[: args.n_examples]
    model, tok = load(args.model_dir, args.device)
    ids = ids_of(model, tok)
    rng = np.random.default_rng(args.seed)
    prompts, q_prompts, mistakes = [], [], []
    for r in rows:
        base = int(r.get("base", 10))
        m = mistake_text(r["completion"], base, rng)
        q = encode(tok, r["prompt"])
        prompts.append(q + encode(tok, m))  # tokenized like tok(prompt) + tok(completion)
        q_prompts.append(q)
        mistakes.append(m)
    out = sample(model, tok, prompts, args, max_new_tokens=args.max_new_tokens, seed=args.seed)
    table = []
    for r, m, q, acts, st in zip(rows, mistakes, q_prompts, out.actions, out.states):
        table.append({
            "ground_truth_qa": r["prompt"] + r["completion"],
            "prompt_with_mistake": r["prompt"] + m,
            "completion_actions": decode_actions(tok, acts, bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"]),
            "final_state": tok.decode(continuation(st, q)).strip(),
        })
    write_csv(args.out, table, TABLE1_COLUMNS)
    if args.summary:
        # the same completions as the CSV; whole final states, judged as test accuracy judges them
        res = recovery_summary([tok.decode(st) for st in out.states], [str(r["answer"]) for r in rows],
                               out.actions, ids["bkspc_id"])
        res.update({"mistakes": mistakes, "mistake_seed": args.seed,
                    **_common(args.model_dir, args.test_file, rows),
                    "sampling": sampling_settings(args, args.max_new_tokens, getattr(out, "max_new_tokens", None))})
        write_json(args.summary, res)
    return table


def cmd_text_mistakes(args) -> list[dict]:
    rows = read_jsonl(args.test_file)
    model, tok = load(args.model_dir, args.device)
    ids = ids_of(model, tok)
    pool = text_pool(rows, tok, prompt_tokens=args.prompt_tokens, new_tokens=0)[: args.n_examples]
    rng = np.random.default_rng(args.seed)
    cands = ordinary_token_ids(tok, getattr(model, "vocab_size", None))
    prompts = [replace_last_token(it["prompt_ids"], cands, rng)[0] for it in pool]
    if not prompts:
        raise SystemExit(f"no held-out text has {args.prompt_tokens} tokens")
    out = sample(model, tok, prompts, args, max_new_tokens=args.new_tokens, seed=args.seed)
    table = [{"prompt": tok.decode(p),
              "completion": decode_actions(tok, a, bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"])}
             for p, a in zip(prompts, out.actions)]
    write_csv(args.out, table, TABLE8_COLUMNS)
    return table


# ---------------------------------------------------------------------------------------------
# CLI


def _add_model(p: argparse.ArgumentParser, *, out_help: str) -> None:
    p.add_argument("--model-dir", required=True, help="directory written by seqmatch.model.save_model")
    p.add_argument("--test-file", required=True, help="held-out JSONL rows (seqmatch.data)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32, help="rows per forward pass")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    add_config_option(p)


def _add_sampling(p: argparse.ArgumentParser, max_new_tokens: int | None) -> None:
    p.add_argument("--temperature", type=float, default=1.0, help="paper: 1 (App. E); 0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0, help="paper: 1")
    p.add_argument("--top-k", type=int, default=0, help="paper: none (0)")
    if max_new_tokens is not None:
        p.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                       help="actions generated at most (<bkspc> counts)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m seqmatch.evaluate", description=__doc__.split("\n")[0])
    add_config_option(ap)  # also accepted before the subcommand
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("arithmetic", help="accuracy on arithmetic test questions (Fig. 3, Tables 6-7)")
    _add_model(p, out_help="metrics JSON")
    p.add_argument("--generations", required=True, help="per-row JSONL: actions, final text, correct")
    p.add_argument("--n-eval", "--n", dest="n_eval", type=int, default=None, help="first N test rows (default all)")
    p.add_argument("--answer-normalization", choices=("numeric", "strip", "exact"), default="numeric",
                   help="numeric: delete every space of both answers (numbers); strip: leading and trailing "
                        "spaces; exact: as written (seqmatch.metrics.extract_answer)")
    _add_sampling(p, 64)

    p = sub.add_parser("text", help="MAUVE, n-gram entropy, diversity, perplexity (Table 2)")
    _add_model(p, out_help="metrics JSON")
    p.add_argument("--decoding", choices=["sample", "contrastive"], default="sample")
    p.add_argument("--contrastive-k", "--k", dest="contrastive_k", type=int, default=5, help="contrastive search: candidates")
    p.add_argument("--penalty-alpha", type=float, default=0.6, help="contrastive search: degeneration penalty")
    p.add_argument("--prompt-tokens", type=int, default=256, help="paper 256")
    p.add_argument("--new-tokens", type=int, default=256, help="paper 256")
    p.add_argument("--n-samples", type=int, default=1000, help="per draw; paper 1,000")
    p.add_argument("--draws", type=int, default=2, help="paper 2")
    p.add_argument("--featurizer", default="minilm", help="minilm (packaged, offline), gpt2-large or a local path")
    p.add_argument("--mauve-seed", type=int, default=25, help="MAUVE's k-means seed (mauve-text's default)")
    p.add_argument("--ngram-reduction", choices=["per_generation", "pooled"], default="per_generation")
    p.add_argument("--heldout-ppl-rows", type=int, default=200, help="clean held-out rows for perplexity (0: skip)")
    _add_sampling(p, None)

    p = sub.add_parser("translation", help="sacrebleu BLEU on en->fr (Table 5)")
    _add_model(p, out_help="metrics JSON")
    p.add_argument("--n-eval", "--n", dest="n_eval", type=int, default=None, help="first N test rows (default all)")
    _add_sampling(p, 96)

    p = sub.add_parser("mistakes", help="Table 1: completions of prompts with a wrong solution start")
    _add_model(p, out_help="CSV")
    p.add_argument("--n-examples", "--n", dest="n_examples", type=int, default=4, help="first N test questions (paper 4)")
    p.add_argument("--summary", default=None,
                   help="also write a JSON: shares of final_state_correct and first_action_bkspc")
    _add_sampling(p, 64)

    p = sub.add_parser("text-mistakes", help="Table 8: completions of prompts whose last token is random")
    _add_model(p, out_help="CSV")
    p.add_argument("--n-examples", "--n", dest="n_examples", type=int, default=3, help="first N held-out texts")
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=32)
    _add_sampling(p, None)
    return ap


COMMANDS = {
    "arithmetic": cmd_arithmetic,
    "text": cmd_text,
    "translation": cmd_translation,
    "mistakes": cmd_mistakes,
    "text-mistakes": cmd_text_mistakes,
}


def main(argv: Sequence[str] | None = None):
    args = parse_args(build_parser(), argv)
    t0 = time.perf_counter()
    res = COMMANDS[args.command](args)
    summary = {k: v for k, v in res.items() if not isinstance(v, (list, dict))} if isinstance(res, dict) else \
        {"rows": len(res)}
    print(to_json(summary, ensure_ascii=True), file=sys.stderr)
    print(f"seqmatch.evaluate {args.command}: {time.perf_counter() - t0:.1f}s -> {args.out}", file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
