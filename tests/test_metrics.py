"""Metrics on small hand-computed cases (every expected value is derived by hand in a comment)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seqmatch import metrics as M
from seqmatch.actions import actions_to_inputs, collate

# a toy vocabulary: ids 0..3 are the special tokens, then single characters
PAD, BOS, EOS, BK = 0, 1, 2, 3
CHARS = list("0123456789-+ Solution:abcdefghijklmnopqrstuvwxyz.")
VOCAB = ["<pad>", "<bos>", "<eos>", "<bkspc>"] + CHARS
ID = {t: i for i, t in enumerate(VOCAB)}


def enc(s: str) -> list[int]:
    return [ID[c] for c in s]


def dec(ids) -> str:
    return "".join(VOCAB[i] for i in ids)


# ------------------------------------------------------------------ accuracy


def test_backspaces_turn_wrong_answer_into_right_one():
    prompt = "In base 8, what is 4354 + 33? Solution: "
    answer = "4407"
    # Table 1 style: the model writes "5", deletes it, then writes the right answer and <eos>
    gen = enc("5") + [BK] + enc("4407") + [EOS]
    raw = dec(gen)  # what you would score without applying the backspaces: "5<bkspc>4407<eos>"
    final = prompt + M.final_state_text(gen, BK, dec)
    assert raw == "5<bkspc>4407<eos>"
    assert M.final_state_text(gen, BK, dec) == "4407<eos>"
    res = M.arithmetic_accuracy([prompt + raw, final], [answer, answer])
    assert res["correct"] == [False, True]
    assert res["accuracy"] == 0.5 and res["n"] == 2 and res["n_correct"] == 1


def test_accuracy_normalization_rules():
    texts = [
        "Q? Solution: -57 6<eos><pad><pad>",  # decoded with spaces between tokens, padding after eos
        "Q? Solution: 12 Solution: 13<eos>",  # the LAST Solution: counts
        "  2, 3, 7 <eos> 99",  # no marker: whole text; anything after <eos> is ignored
        "<bos>Q? Solution: 41",  # unfinished but right
        "Q? Solution: 410",
    ]
    answers = ["-576", "13", "2, 3, 7", "41", "41"]
    res = M.arithmetic_accuracy(texts, answers)
    assert res["correct"] == [True, True, True, True, False]
    assert res["predictions"][0] == "-576"
    assert math.isnan(M.arithmetic_accuracy([], [])["accuracy"])
    with pytest.raises(ValueError):
        M.arithmetic_accuracy(["a"], [])


# (decoded final state, the row's answer) -> correct under numeric, strip, exact; by hand
NORMALIZATION_CASES = [
    ("reverse: a b Solution: b a<eos>", "b a", (True, True, True)),
    ("reverse: a b Solution: ba<eos>", "b a", (True, False, False)),  # the space inside counts unless numeric
    ("reverse: ab Solution:  ba <eos>", "ba", (True, True, False)),  # spaces around: strip forgives them
    ("reverse: ab Solution: ba  ", "ba", (True, True, False)),  # trailing spaces, unfinished
    ("reverse: ab Solution:ba<eos>", "ba", (True, True, True)),  # no space after the marker: nothing to delete
    ("Q? Solution: 1 2<eos>", "12", (True, False, False)),  # digits decoded apart: numeric's case
    ("q Solution: New York<eos><pad>", "New York", (True, True, True)),
    ("q Solution: new york<eos>", "New York", (False, False, False)),  # case always counts
]


@pytest.mark.parametrize("text,answer,expected", NORMALIZATION_CASES)
def test_answer_normalization_is_a_task_setting(text, answer, expected):
    got = tuple(M.arithmetic_accuracy([text], [answer], norm)["correct"][0] for norm in ("numeric", "strip", "exact"))
    assert got == expected
    with pytest.raises(ValueError, match="expected one of numeric, strip, exact"):
        M.extract_answer(text, "lower")


def test_answer_normalizations_agree_with_the_workflow():
    """One list of names: the metric's, the config check's and the evaluate CLI's choices."""
    from seqmatch import evaluate, runs

    assert M.ANSWER_NORMALIZATIONS == runs.ANSWER_NORMALIZATIONS
    args = evaluate.build_parser().parse_args(["arithmetic", "--model-dir", "m", "--test-file", "t", "--out", "o",
                                               "--generations", "g"])
    assert args.answer_normalization == "numeric"  # the arithmetic tasks' (config.yaml does not set it)
    sub = next(a for a in evaluate.build_parser()._actions if a.dest == "command").choices["arithmetic"]
    action = next(a for a in sub._actions if a.dest == "answer_normalization")
    assert tuple(action.choices) == M.ANSWER_NORMALIZATIONS


def test_bkspc_rate():
    acts = [[5, BK, 6, EOS], [5, 6, EOS], [BK, BK, EOS], []]
    r = M.bkspc_rate(acts, BK)
    # 3 backspaces among 4 + 3 + 3 + 0 = 10 actions; 2 of 4 sequences use one
    assert r["action_rate"] == pytest.approx(0.3)
    assert r["sequence_rate"] == pytest.approx(0.5)
    assert r["mean_per_sequence"] == pytest.approx(0.75)
    assert (r["n_actions"], r["n_bkspc"], r["n_sequences"]) == (10, 3, 4)


# ------------------------------------------------------------------ n-grams


def test_rep_n_and_diversity_hand_computed():
    # "a b c a b c a b": bigrams ab bc ca ab bc ca ab -> 3 unique / 7
    #                    trigrams abc bca cab abc bca cab -> 3 / 6
    #                    4-grams abca bcab cabc abca bcab -> 3 / 5
    d = M.diversity(["a b c a b c a b"])
    assert d["rep_2"] == pytest.approx(100 * (1 - 3 / 7))
    assert d["rep_3"] == pytest.approx(50.0)
    assert d["rep_4"] == pytest.approx(40.0)
    assert d["diversity"] == pytest.approx((3 / 7) * (1 / 2) * (3 / 5))  # 9/70
    # SimCTG's script drops the last n-gram: it would give 3/6 * 3/5 * 3/4 = 0.225
    assert d["diversity"] != pytest.approx(0.225)


def test_rep_n_counts_the_last_ngram():
    # "a b a b c": bigrams ab ba ab bc -> 3 unique of 4 (dropping the last, "bc", would give 2 of 3)
    assert M.rep_n([["a", "b", "a", "b", "c"]], 2) == pytest.approx(25.0)


def test_rep_n_uniqueness_is_per_generation_totals_pooled():
    # gen 1 "a b a b": ab ba ab -> 2 unique of 3; gen 2 "a b": 1 of 1; (2+1)/(3+1) -> rep = 25
    # (pooling uniqueness across generations would give 2 unique of 4 -> 50)
    assert M.rep_n(["a b a b", "a b"], 2) == pytest.approx(25.0)
    # token ids work the same way; sequences shorter than n contribute nothing
    assert M.rep_n([[1, 2, 1, 2], [1, 2], [7]], 2) == pytest.approx(25.0)
    assert math.isnan(M.rep_n([[1]], 2))
    # no repetition at all -> diversity 1
    assert M.diversity(["the quick brown fox jumps"])["diversity"] == pytest.approx(1.0)


def test_ngram_entropy_hand_computed():
    # unigrams of "a b a b a": a x3, b x2 -> -(0.6 ln 0.6 + 0.4 ln 0.4)
    h1 = M.ngram_entropy(["a b a b a"], n=1)
    assert h1["ngram_entropy"] == pytest.approx(-(0.6 * math.log(0.6) + 0.4 * math.log(0.4)))
    assert h1["unit"] == "nats" and h1["n_ngrams"] == 5
    # bigrams ab ba ab ba -> two equiprobable -> ln 2
    assert M.ngram_entropy(["a b a b a"], n=2)["ngram_entropy"] == pytest.approx(math.log(2))
    # pooled over generations, no n-gram across the boundary: {ab, cd} -> ln 2 (not ln 3 with "b c")
    assert M.ngram_entropy(["a b", "c d"], n=2)["ngram_entropy"] == pytest.approx(math.log(2))
    # pooled: the same 4-gram in two generations plus one other -> counts 2, 1
    h = M.ngram_entropy([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8]], n=4)
    assert h["ngram_entropy"] == pytest.approx(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    # per-generation mean: each generation has a single 4-gram -> entropy 0
    assert M.ngram_entropy([[1, 2, 3, 4], [5, 6, 7, 8]], n=4, per_generation=True)["ngram_entropy"] == 0.0
    # per generation: "a b a b a" -> ln 2 and "a b c" -> ln 2 (ab, bc), mean ln 2; "a" has no bigram
    hp = M.ngram_entropy(["a b a b a", "a b c", "a"], n=2, per_generation=True)
    assert hp["ngram_entropy"] == pytest.approx(math.log(2)) and hp["reduction"] == "per_generation_mean"
    assert math.isnan(M.ngram_entropy([[1, 2]], n=4)["ngram_entropy"])


# ------------------------------------------------------------------ perplexity


class FixedDistModel:
    """Fake LM: the same next-token distribution ``probs`` at every position."""

    def __init__(self, probs):
        self.logp = torch.log(torch.tensor(probs, dtype=torch.float64)).float()
        self.calls = 0

    def __call__(self, *, input_ids, position_ids, attention_mask):
        assert position_ids.shape == input_ids.shape and attention_mask is not None
        self.calls += 1
        B, T = input_ids.shape
        # add a per-row constant: logits are only defined up to a shift
        shift = torch.arange(B, dtype=torch.float32).view(B, 1, 1)
        return SimpleNamespace(logits=self.logp.expand(B, T, -1) + shift)


# ids: 0 <pad>, 1 <bos>, 2 <eos>, 3 <bkspc>, 4 a, 5 b
PROBS = [1 / 16, 1 / 16, 1 / 8, 1 / 8, 1 / 2, 1 / 8]


def _batches():
    t1 = actions_to_inputs([4, 5, 2], bos_id=1, bkspc_id=3, eos_id=2)  # a b <eos>
    t2 = actions_to_inputs([4, 2], bos_id=1, bkspc_id=3, eos_id=2)  # a <eos>
    return [collate([t1, t2], pad_id=0), collate([t2], pad_id=0)]


def test_perplexity_fixed_distribution():
    model = FixedDistModel(PROBS)
    res = M.perplexity(model, _batches())
    # targets: (a b eos), (a eos), (a eos): -ln p = ln2 + ln8 + ln8 + 2*(ln2 + ln8) = 15 ln2 over 7
    assert res["n_tokens"] == 7
    assert res["nll_sum"] == pytest.approx(15 * math.log(2), rel=1e-6)
    assert res["perplexity"] == pytest.approx(2 ** (15 / 7), rel=1e-6)
    assert model.calls == 2


def test_perplexity_excluding_bkspc_renormalizes():
    # without <bkspc> (p = 1/8) the other probabilities are divided by 7/8: perplexity x 7/8
    res = M.perplexity(FixedDistModel(PROBS), _batches(), exclude_ids=[3])
    assert res["perplexity"] == pytest.approx(2 ** (15 / 7) * 7 / 8, rel=1e-6)
    assert "without ids [3]" in res["normalization"]


def test_perplexity_mask_prompt_and_clean_check():
    t = actions_to_inputs([4, 5, 2], bos_id=1, bkspc_id=3, eos_id=2, prompt_len=1)
    res = M.perplexity(FixedDistModel(PROBS), [collate([t], pad_id=0)], mask_prompt=True)
    # the prompt action "a" is skipped: b, eos -> 2 ln 8 over 2 -> perplexity 8
    assert res["n_tokens"] == 2 and res["perplexity"] == pytest.approx(8.0, rel=1e-6)
    noisy = actions_to_inputs([4, 5, 3, 2], bos_id=1, bkspc_id=3, eos_id=2)
    with pytest.raises(ValueError):
        M.perplexity(FixedDistModel(PROBS), [collate([noisy], pad_id=0)], bkspc_id=3)


# ------------------------------------------------------------------ MAUVE


def test_mauve_same_distribution_high_shifted_low():
    rng = np.random.default_rng(0)
    kw = dict(kmeans_num_redo=1, kmeans_max_iter=100)
    p = rng.normal(size=(200, 16))
    q = rng.normal(size=(200, 16))
    same = M.mauve_score(p, q, **kw)
    assert same["mauve"] > 0.85  # 0.99 with seed 25 here; 0.90-0.97 with seeds 1-3
    shifted = M.mauve_score(p, q + 1.0, **kw)
    assert shifted["mauve"] < 0.3  # about 0.03
    # settings recorded; "auto" resolves to round(200 / 10) buckets
    assert same["num_buckets"] == 20 and same["num_buckets_arg"] == "auto"
    assert same["seed"] == 25 and same["kmeans_num_redo"] == 1 and same["kmeans_max_iter"] == 100
    assert (same["n_p"], same["n_q"], same["dim"]) == (200, 200, 16)
    assert M.mauve_score(p, p, **kw)["mauve"] == pytest.approx(1.0)


def test_mean_sd():
    assert M.mean_sd([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2)))  # sample sd: |a-b|/sqrt 2
    assert M.mean_sd([1.0, 3.0], ddof=0) == pytest.approx((2.0, 1.0))
    m, s = M.mean_sd([0.5])
    assert m == 0.5 and math.isnan(s)


# ------------------------------------------------------------------ features


def test_minilm_features_match_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = ["The cat sat on the mat.", "Rain fell on Paris all week, and nobody minded.", ""]
    f = M.featurize(texts, featurizer="minilm", max_tokens=128)
    assert f.shape == (3, 384) and f.dtype == np.float32
    ref = SentenceTransformer(str(M.minilm_path()), device="cpu").encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(f, ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    # truncation keeps the first max_tokens wordpieces (each of these words is one wordpiece)
    long = "the cat sat on the mat and then it ran away from the dog"
    np.testing.assert_allclose(
        M.featurize([long], max_tokens=5), M.featurize(["the cat sat on the"], max_tokens=64), atol=1e-6
    )


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny_gpt2")
    vocab = {w: i for i, w in enumerate(["<eos>", "<unk>"] + "the a cat dog sat ran on mat away".split())}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", unk_token="<unk>").save_pretrained(d)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(vocab), n_positions=32, n_embd=16, n_layer=2, n_head=2)
    GPT2LMHeadModel(cfg).eval().save_pretrained(d)
    return d, vocab


def test_gpt2_style_featurizer_is_last_token_hidden_state(tiny_gpt2_dir):
    from transformers import AutoModel

    d, vocab = tiny_gpt2_dir
    texts = ["the cat sat on the mat", "a dog ran", "the cat sat on the mat and ran away", ""]
    f = M.featurize(texts, featurizer=str(d), max_tokens=6, batch_size=3)
    assert f.shape == (4, 16)
    # reference: each text alone (no padding), its first <= 6 word ids, final hidden state at the end
    model = AutoModel.from_pretrained(str(d)).eval()
    for i, t in enumerate(texts):
        ids = [vocab.get(w, vocab["<unk>"]) for w in t.split()][:6] or [vocab["<eos>"]]
        with torch.no_grad():
            h = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].numpy()
        np.testing.assert_allclose(f[i], h, atol=1e-5)
    # the third text truncated to 6 tokens is the first one
    np.testing.assert_allclose(f[2], f[0], atol=1e-6)


# ------------------------------------------------------------------ BLEU


def test_bleu_matches_sacrebleu_and_applies_backspaces():
    import sacrebleu

    hyps = ["the cat sat on the mat .", "il pleut sur paris ."]
    refs = ["the cat sat on a mat .", "il pleut a paris ."]
    res = M.bleu(hyps, refs)
    assert res["score"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert res["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    # the same hypotheses generated with mistakes and <bkspc>: scored on their final states
    word_vocab = ["<pad>", "<bos>", "<eos>", "<bkspc>"] + sorted({w for s in hyps + refs for w in s.split()} | {"dog"})
    wid = {w: i for i, w in enumerate(word_vocab)}

    def wdec(ids):
        return " ".join(word_vocab[i] for i in ids)

    acts = [
        [wid[w] for w in "the dog".split()] + [BK] + [wid[w] for w in "cat sat on the mat .".split()],
        [wid["il"], wid["a"], BK, wid["pleut"], wid["sur"], wid["paris"], wid["."]],
    ]
    finals = [M.final_state_text(a, BK, wdec) for a in acts]
    assert finals == hyps
    assert M.bleu(finals, refs)["score"] == pytest.approx(res["score"])
    raw = [wdec(a) for a in acts]  # not applying the backspaces scores lower
    assert M.bleu(raw, refs)["score"] < res["score"]


def test_perplexity_of_a_real_seqmatch_model_batched_equals_per_sequence():
    """Padding and the 4-D mask do not change the number: a batch of two rows equals each row alone."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from seqmatch.model import ModelConfig, build_model

    vocab = {w: i for i, w in enumerate("<pad> <bos> <eos> <unk> the a cat dog sat ran on mat".split())}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=1, d_model=32, d_ff=64, max_position_embeddings=32), tok)
    ids = dict(bos_id=model.bos_id, bkspc_id=model.bkspc_id, eos_id=model.eos_id)
    trajs = [
        actions_to_inputs(tok(s)["input_ids"] + [model.eos_id], **ids) for s in ("the cat sat on the mat", "a dog ran")
    ]
    res = M.perplexity(model, [collate(trajs, pad_id=model.pad_id)])
    nll, n = 0.0, 0
    for t in trajs:  # reference: each sequence alone, no padding, cross-entropy over all V logits
        with torch.no_grad():
            logits = model(**collate([t], pad_id=model.pad_id).model_inputs()).logits[0]
        keep = t.labels != -100
        nll += torch.nn.functional.cross_entropy(logits[keep], t.labels[keep], reduction="sum").item()
        n += int(keep.sum())
    assert res["n_tokens"] == n == 11  # 6 + 3 words, 2 <eos>
    assert res["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)
