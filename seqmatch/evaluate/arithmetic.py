"""Question/answer tasks: test accuracy (Fig. 3, Tables 6-7) and mistake recovery (Table 1).

    from seqmatch.evaluate import arithmetic_accuracy
    res = arithmetic_accuracy(model, tokenizer, [{"question": "What is 12 + 30?", "answer": "42"}])
    res["accuracy"], res["generations"][0]["actions"]
"""

from __future__ import annotations

import re
import time
from typing import Sequence

import numpy as np

from seqmatch.evaluate import common
from seqmatch.evaluate.common import continuation, decode_actions, encode, ids_of

SOLUTION_MARKER = "Solution:"


def qa_rows(rows: Sequence[dict]) -> list[dict]:
    """Rows with ``prompt`` and ``answer``: question/answer rows made ``"{question} Solution:"`` as
    the pipeline's data step does; a row without ``answer`` is judged against its completion."""
    from seqmatch.train import training_row

    out = []
    for i, r in enumerate(rows):
        if "prompt" not in r:
            r = {**r, **training_row(r, f"rows[{i}]")}
        out.append({**r, "answer": str(r["answer"]) if "answer" in r else str(r["completion"]).strip()})
    return out


def arithmetic_accuracy(model, tokenizer, rows: Sequence[dict], *, max_new_tokens: int = 64, seed: int = 0,
                        temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                        batch_size: int | None = 32, answer_normalization: str = "numeric") -> dict:
    """Sample a completion of every row's prompt (``<bkspc>`` applied) and score it: ``accuracy``
    (``seqmatch.metrics.arithmetic_accuracy``: the final state's text after the last ``Solution:``
    against the row's answer, whitespace as ``answer_normalization`` says: ``numeric`` deletes every
    space (numbers), ``strip`` the leading and trailing ones, ``exact`` none; a prompt without
    ``Solution:`` is judged on what the model wrote after it), ``n``, ``n_correct``, ``bkspc_rate`` (share of generated actions),
    ``seq_bkspc_frac`` (share of rows with one), ``bkspc_per_sequence``, ``finished_frac``,
    ``sampling`` (the settings), ``generation_seconds`` and ``generations`` (one dict per row:
    actions as text, final text, prediction, correct, finished).

    ``rows``: dicts with ``prompt`` and ``answer`` (or ``completion``), or ``question`` and ``answer``.
    ``model``: a ``SeqMatchLM`` (``seqmatch.load_model``). Defaults: the paper's sampling (App. E)."""
    from seqmatch.metrics import arithmetic_accuracy as score, bkspc_rate

    rows = qa_rows(rows)
    ids = ids_of(model, tokenizer)
    prompts = [encode(tokenizer, r["prompt"]) for r in rows]
    t0 = time.perf_counter()
    out = common.sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed,
                        temperature=temperature, top_p=top_p, top_k=top_k, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    # no clean-up of spaces: answers whose spaces count (answer_normalization strip, exact)
    finals = [tokenizer.decode(s if SOLUTION_MARKER in r["prompt"] else continuation(s, p),
                               clean_up_tokenization_spaces=False)
              for r, s, p in zip(rows, out.states, prompts)]
    acc = score(finals, [r["answer"] for r in rows], answer_normalization)
    rate = bkspc_rate(out.actions, ids["bkspc_id"])
    gens = [{"index": i, "prompt": r["prompt"], "answer": r["answer"],
             "actions": decode_actions(tokenizer, out.actions[i], bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"]),
             "n_actions": len(out.actions[i]), "n_bkspc": sum(1 for a in out.actions[i] if a == ids["bkspc_id"]),
             "final_text": finals[i], "prediction": acc["predictions"][i], "correct": bool(acc["correct"][i]),
             "finished": bool(out.finished[i])} for i, r in enumerate(rows)]
    tasks = list(dict.fromkeys(str(r.get("task", "arithmetic")) for r in rows)) or ["arithmetic"]
    return {
        "task": "; ".join(tasks),
        "accuracy": acc["accuracy"],
        "n": acc["n"],
        "n_correct": acc["n_correct"],
        "answer_normalization": answer_normalization,
        "bkspc_rate": rate["action_rate"],
        "seq_bkspc_frac": rate["sequence_rate"],
        "bkspc_per_sequence": rate["mean_per_sequence"],
        "finished_frac": float(np.mean(out.finished)) if out.finished else None,
        "sampling": common.sampling_settings(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                                             max_new_tokens=max_new_tokens,
                                             effective=getattr(out, "max_new_tokens", None)),
        "generation_seconds": seconds,
        "generations": gens,
    }


# ---------------------------------------------------------------------------------------------
# Table 1: mistake recovery

TABLE1_COLUMNS = ("ground_truth_qa", "prompt_with_mistake", "completion_actions", "final_state")

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


def mistakes(model, tokenizer, rows: Sequence[dict], *, seed: int = 0, max_new_tokens: int = 64,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, batch_size: int | None = 32) -> dict:
    """Table 1: complete each row's prompt followed by a wrong start of the solution
    (``mistake_text``, drawn with ``seed``, which also seeds the sampler: one seed gives every model
    the same mistakes). Returns ``table`` (rows of ``TABLE1_COLUMNS``) and ``summary``
    (``recovery_summary`` of the same completions, whole final states judged as test accuracy
    judges them, with the mistakes and the sampling settings)."""
    rows = qa_rows(rows)
    ids = ids_of(model, tokenizer)
    rng = np.random.default_rng(seed)
    prompts, q_prompts, drawn = [], [], []
    for r in rows:
        m = mistake_text(r["completion"], int(r.get("base", 10)), rng)
        q = encode(tokenizer, r["prompt"])
        prompts.append(q + encode(tokenizer, m))  # tokenized like tok(prompt) + tok(completion)
        q_prompts.append(q)
        drawn.append(m)
    out = common.sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed,
                        temperature=temperature, top_p=top_p, top_k=top_k, batch_size=batch_size)
    table = [{"ground_truth_qa": r["prompt"] + r["completion"], "prompt_with_mistake": r["prompt"] + m,
              "completion_actions": decode_actions(tokenizer, acts, bkspc_id=ids["bkspc_id"], eos_id=ids["eos_id"]),
              "final_state": tokenizer.decode(continuation(st, q)).strip()}
             for r, m, q, acts, st in zip(rows, drawn, q_prompts, out.actions, out.states)]
    summary = recovery_summary([tokenizer.decode(st) for st in out.states], [r["answer"] for r in rows],
                               out.actions, ids["bkspc_id"])
    summary.update({"mistakes": drawn, "mistake_seed": seed,
                    "sampling": common.sampling_settings(temperature=temperature, top_p=top_p, top_k=top_k,
                                                         seed=seed, max_new_tokens=max_new_tokens,
                                                         effective=getattr(out, "max_new_tokens", None))})
    return {"table": table, "summary": summary}
