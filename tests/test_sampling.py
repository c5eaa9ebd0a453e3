"""seqmatch.sampling against independent references.

* every logit the sampler used equals the model's logits on the current state recomputed from
  scratch (plain causal mask, positions 0..n-1), along forced and sampled action sequences with
  backspace runs, a backspace right after the prompt, backspaces below the prompt and at <bos>;
* empirical next-action frequencies match softmax(logits / T) truncated by top-k / top-p computed
  in numpy (chi-square test at a fixed seed);
* contrastive search equals a brute-force implementation that recomputes everything per step.
"""

import numpy as np
import pytest
import torch
from scipy import stats
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from seqmatch.actions import actions_to_inputs, apply_backspaces, collate
from seqmatch.model import ModelConfig, build_model
from seqmatch.sampling import contrastive_search, generate

WORDS = [chr(97 + i) for i in range(20)]  # ids 4..23; <bkspc> = 24


def tiny_tokenizer():
    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>"] + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_model(arch, attn="sdpa", seed=0, logit_scale=1.0):
    torch.manual_seed(seed)
    cfg = ModelConfig(arch=arch, n_layer=2, n_head=4, d_model=32, d_ff=64, max_position_embeddings=64,
                      attn_implementation=attn)
    m = build_model(cfg, tiny_tokenizer()).eval()
    if logit_scale != 1.0:
        with torch.no_grad():
            m.hf_model.get_output_embeddings().weight.mul_(logit_scale)
    return m


@torch.no_grad()
def scratch_logits(m, state):
    """Logits of ``[<bos>] + state`` computed from nothing: one causal pass, positions 0..n-1."""
    ids = torch.tensor([[m.bos_id] + list(state)])
    n = ids.shape[1]
    mask = torch.ones(n, n, dtype=torch.bool).tril()[None, None]
    return m(input_ids=ids, position_ids=torch.arange(n)[None], attention_mask=mask).logits[0, -1]


def check_against_scratch(m, prompts, out, forced=None):
    n_checked = 0
    for b, p in enumerate(prompts):
        acts = out.actions[b]
        if forced is not None:
            assert acts == forced[b]
        assert out.step_logits[b].shape[0] == len(acts)
        for t in range(len(acts)):
            state = apply_backspaces(list(p) + acts[:t], m.bkspc_id)
            ref = scratch_logits(m, state)
            diff = (out.step_logits[b][t] - ref).abs().max().item()
            assert diff < 1e-4, (b, t, diff)
            n_checked += 1
        final = apply_backspaces(list(p) + acts, m.bkspc_id)
        if out.finished[b]:
            assert acts[-1] == m.eos_id and final[-1] == m.eos_id
            final = final[:-1]
        assert out.states[b] == final
    return n_checked


PROMPTS = [[4, 5, 6], [7], [8, 9, 10, 11, 12], []]


def forced_actions(m):
    bk, eos = m.bkspc_id, m.eos_id
    return [
        [bk, 13, 14, bk, bk, 15, 16, eos],  # backspace right after the prompt; a run of two; ends with <eos>
        [bk, bk, bk, 17, 18, bk, 19],  # deletes the prompt, then backspaces at <bos>
        [20, 21, bk, bk, bk, bk, bk, bk, bk, 22, 23],  # run of 7: through the whole prompt to <bos>
        [bk, 4, 5, 6, bk, 7, 8, 9, 10, 11, bk, bk, bk, 12],  # empty prompt; longest row
    ]


@pytest.mark.parametrize("arch,attn", [("gpt2", "sdpa"), ("llama", "sdpa"), ("llama", "eager")])
def test_forced_actions_match_recomputation(arch, attn):
    m = tiny_model(arch, attn)
    forced = forced_actions(m)
    out = generate(m, PROMPTS, max_new_tokens=20, eos_id=m.eos_id, bkspc_id=m.bkspc_id, bos_id=m.bos_id,
                   forced_actions=forced, return_step_logits=True)
    assert out.finished == [True, False, False, False]
    assert out.states[1] == [17, 19] and out.states[2] == [22, 23]
    assert check_against_scratch(m, PROMPTS, out, forced) == sum(len(f) for f in forced)
    # chunked batches take the same path
    out2 = generate(m, PROMPTS, max_new_tokens=20, eos_id=m.eos_id, bkspc_id=m.bkspc_id, bos_id=m.bos_id,
                    forced_actions=forced, return_step_logits=True, batch_size=3)
    assert out2.actions == out.actions and out2.states == out.states
    for a, b in zip(out.step_logits, out2.step_logits):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_sampled_actions_match_recomputation(arch):
    """Free sampling with <bkspc> made likely: whatever happens, every step's logits are right."""
    m = tiny_model(arch, seed=3)
    with torch.no_grad():  # make <bkspc> a frequent action
        W = m.hf_model.get_output_embeddings().weight
        W[m.bkspc_id] = W[: m.bkspc_id].mean(0) + 0.5 * W[: m.bkspc_id].std(0)
    g = torch.Generator().manual_seed(7)
    out = generate(m, PROMPTS, max_new_tokens=30, eos_id=m.eos_id, bkspc_id=m.bkspc_id, bos_id=m.bos_id,
                   temperature=3.0, generator=g, return_step_logits=True)
    n_bk = sum(a.count(m.bkspc_id) for a in out.actions)
    assert n_bk >= 3, "test needs some backspaces"
    assert check_against_scratch(m, PROMPTS, out) > 30
    # and with the single-pass training inputs (Algorithm A) of the same trajectories
    trajs = [actions_to_inputs(p + a, bos_id=m.bos_id, bkspc_id=m.bkspc_id, eos_id=m.eos_id)
             for p, a in zip(PROMPTS, out.actions)]
    batch = collate(trajs, pad_id=m.pad_id)
    with torch.no_grad():
        train_logits = m(**batch.model_inputs()).logits
    for b, (p, a) in enumerate(zip(PROMPTS, out.actions)):
        got = train_logits[b, len(p) : len(p) + len(a)]
        assert (got - out.step_logits[b]).abs().max() < 1e-4


def test_deterministic_for_a_seed():
    m = tiny_model("llama")
    kw = dict(max_new_tokens=12, eos_id=m.eos_id, bkspc_id=m.bkspc_id, bos_id=m.bos_id, top_p=0.9, top_k=10)
    a = generate(m, PROMPTS, generator=torch.Generator().manual_seed(1), **kw)
    b = generate(m, PROMPTS, generator=torch.Generator().manual_seed(1), **kw)
    c = generate(m, PROMPTS, generator=torch.Generator().manual_seed(2), **kw)
    assert a.actions == b.actions and a.states == b.states and a.finished == b.finished
    assert a.actions != c.actions
    assert all(len(x) <= 12 for x in a.actions)
    for p, acts, st, fin in zip(PROMPTS, a.actions, a.states, a.finished):
        assert fin == (m.eos_id in acts)
        if fin:
            assert acts.index(m.eos_id) == len(acts) - 1
        else:
            assert len(acts) == 12
        full = apply_backspaces(p + acts, m.bkspc_id)  # the state without the leading <bos>
        assert st == (full[:-1] if fin else full)


def test_greedy_equals_argmax_recomputation():
    m = tiny_model("gpt2", logit_scale=5.0)
    out = generate(m, PROMPTS, max_new_tokens=10, eos_id=m.eos_id, bkspc_id=m.bkspc_id, bos_id=m.bos_id,
                   temperature=0)
    for p, acts in zip(PROMPTS, out.actions):
        for t, a in enumerate(acts):
            state = apply_backspaces(p + acts[:t], m.bkspc_id)
            assert a == int(scratch_logits(m, state).argmax())


def _reference_probs(logits, T, top_k, top_p):
    """softmax(logits / T) truncated by top-k then top-p, in float64 numpy."""
    x = logits.astype(np.float64) / T
    keep = np.ones_like(x, dtype=bool)
    if top_k:
        thresh = np.sort(x)[::-1][top_k - 1]
        keep &= x >= thresh
    p = np.exp(x - x[keep].max()) * keep
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        kept, mass = [], 0.0
        for i in order:
            if not keep[i]:
                continue
            kept.append(i)
            mass += p[i]
            if mass >= top_p:
                break
        keep2 = np.zeros_like(keep)
        keep2[kept] = True
        p = p * keep2
        p /= p.sum()
    return p


@pytest.mark.parametrize("T,top_k,top_p", [(1.0, 0, 1.0), (0.7, 6, 1.0), (1.3, 0, 0.75), (1.0, 8, 0.9)])
def test_sampling_distribution_chi_square(T, top_k, top_p):
    m = tiny_model("llama", seed=5, logit_scale=8.0)
    prompt = [4, 9, 4]
    N = 6000
    logits = scratch_logits(m, prompt).numpy()
    ref = _reference_probs(logits, T, top_k, top_p)
    assert (ref > 0).sum() >= 3, "degenerate test distribution"
    g = torch.Generator().manual_seed(1234)
    out = generate(m, [prompt] * N, max_new_tokens=1, eos_id=m.eos_id, bkspc_id=m.bkspc_id, bos_id=m.bos_id,
                   temperature=T, top_k=top_k, top_p=top_p, generator=g)
    counts = np.bincount([a[0] for a in out.actions], minlength=len(ref))
    assert counts[ref == 0].sum() == 0, "sampled a token outside the top-k / top-p support"
    exp = ref * N
    # pool cells with small expected counts into one
    big = exp >= 5
    obs_cells = list(counts[big]) + ([counts[~big & (ref > 0)].sum()] if (~big & (ref > 0)).any() else [])
    exp_cells = list(exp[big]) + ([exp[~big & (ref > 0)].sum()] if (~big & (ref > 0)).any() else [])
    if len(obs_cells) >= 2:
        pval = stats.chisquare(obs_cells, exp_cells).pvalue
        assert pval > 1e-3, (pval, obs_cells, exp_cells)


def test_positions_limit_is_checked():
    m = tiny_model("gpt2")
    with pytest.raises(ValueError, match="positions"):
        generate(m, [[4] * 10], max_new_tokens=60, eos_id=m.eos_id, bkspc_id=m.bkspc_id, bos_id=m.bos_id)


# ------------------------------------------------------------------------------------------------
# contrastive search


@torch.no_grad()
def brute_force_contrastive(m, prompt, k, alpha, max_new_tokens):
    """Su et al. (2022), recomputing the whole sequence for every candidate at every step."""
    base = m.hf_model.base_model  # decoder: last_hidden_state is what the output head reads
    ctx = [m.bos_id] + list(prompt)
    gen = []
    for _ in range(max_new_tokens):
        logits = scratch_logits(m, ctx[1:]).double()
        logits[m.bkspc_id] = float("-inf")
        probs = torch.softmax(logits, -1)
        cand_p, cand = torch.topk(probs, k)
        best, best_score = None, None
        for pv, v in zip(cand_p.tolist(), cand.tolist()):
            h = base(input_ids=torch.tensor([ctx + [v]])).last_hidden_state[0].double()
            cos = torch.nn.functional.cosine_similarity(h[-1:], h[:-1], dim=-1)
            score = (1 - alpha) * pv - alpha * cos.max().item()
            if best_score is None or score > best_score:
                best, best_score = v, score
        gen.append(best)
        ctx.append(best)
        if best == m.eos_id:
            break
    return gen


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_contrastive_search_equals_brute_force(arch):
    m = tiny_model(arch, seed=11, logit_scale=3.0)
    prompts = [[4, 5, 6], [7], [8, 9, 10, 11, 12], []]
    k, alpha, n = 4, 0.6, 8
    out = contrastive_search(m, prompts, k=k, penalty_alpha=alpha, max_new_tokens=n, eos_id=m.eos_id,
                             bos_id=m.bos_id)
    for p, acts, st, fin in zip(prompts, out.actions, out.states, out.finished):
        ref = brute_force_contrastive(m, p, k, alpha, n)
        assert acts == ref
        assert m.bkspc_id not in acts
        assert fin == (m.eos_id in acts)
        assert st == p + [a for a in acts if a != m.eos_id]
    # the penalty matters here: alpha = 0 is greedy and differs
    greedy = contrastive_search(m, prompts, k=k, penalty_alpha=0.0, max_new_tokens=n, eos_id=m.eos_id,
                                bos_id=m.bos_id)
    assert greedy.actions != out.actions
    chunked = contrastive_search(m, prompts, k=k, penalty_alpha=alpha, max_new_tokens=n, eos_id=m.eos_id,
                                 bos_id=m.bos_id, batch_size=3)
    assert chunked.actions == out.actions


def test_suppress_ids_are_never_sampled():
    m = tiny_model("llama", seed=2)
    with torch.no_grad():  # make <bos> and <pad> the most likely actions
        W = m.hf_model.get_output_embeddings().weight
        W[m.bos_id] = W[m.pad_id] = 10 * W[4:24].mean(0)
    kw = dict(max_new_tokens=10, eos_id=m.eos_id, bkspc_id=m.bkspc_id, bos_id=m.bos_id)
    out = generate(m, [[4, 5]] * 8, generator=torch.Generator().manual_seed(0), **kw)
    assert any(m.bos_id in a or m.pad_id in a for a in out.actions)
    out = generate(m, [[4, 5]] * 8, generator=torch.Generator().manual_seed(0),
                   suppress_ids=[m.bos_id, m.pad_id], **kw)
    assert not any(m.bos_id in a or m.pad_id in a for a in out.actions)
