"""Algorithm A (seqmatch.actions) against a brute-force simulation of the states, and against
real transformers models run on each state separately."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmatch.actions import (
    IGNORE_INDEX,
    actions_to_inputs,
    apply_backspaces,
    collate,
    truncate_actions,
    visibility_mask,
)

BOS, BKSPC, EOS, PAD = 0, 1, 2, 3
VOCAB = 12  # tokens 4..11 are ordinary


def simulate_states(actions):
    """Brute force: the token list after each action (state 0 = [<bos>])."""
    states = [[BOS]]
    for a in actions:
        s = list(states[-1])
        if a == BKSPC:
            if len(s) > 1:
                s.pop()
        else:
            s.append(a)
        states.append(s)
    return states


actions_strategy = st.lists(
    st.one_of(st.integers(4, VOCAB - 1), st.just(BKSPC)), min_size=0, max_size=40
)


@settings(max_examples=300, deadline=None)
@given(actions_strategy)
def test_visible_inputs_are_exactly_the_state(actions):
    t = actions_to_inputs(actions, bos_id=BOS, bkspc_id=BKSPC)
    states = simulate_states(actions)
    mask = t.mask()
    assert len(t) == len(actions) + 1
    for i, state in enumerate(states):
        visible = torch.nonzero(mask[i]).flatten()
        order = torch.argsort(t.position_ids[visible])
        toks = t.input_ids[visible][order].tolist()
        assert toks == state, (i, actions)
        assert sorted(t.position_ids[visible].tolist()) == list(range(len(state)))
        # the query itself is the last token of its state
        assert mask[i, i] and t.position_ids[i] == len(state) - 1
    assert t.labels.tolist() == list(actions) + [IGNORE_INDEX]
    assert apply_backspaces(actions, BKSPC) == states[-1][1:]


@settings(max_examples=100, deadline=None)
@given(actions_strategy)
def test_mask_equals_algorithm_a_transliteration(actions):
    """The O(L) death-time mask equals the mask of the paper's Algorithm A, run as written
    (copy pointer c, deletion pointer d) over the inputs <bos> a_1..a_L."""
    a = [BOS] + list(actions)
    L = len(a)
    m = torch.zeros(L, L, dtype=torch.bool)
    x = list(a)
    p = [0] * L
    c = d = 0
    for i in range(L):
        m[i] = m[max(i - 1, 0)]
        if a[i] == BKSPC:
            m[i, c] = False
            m[i, d] = False
            m[i, i] = True
            x[i] = x[c]
            p[i] = p[c]
            d = i
            nz = torch.nonzero(m[i, :c]).flatten()
            c = int(nz[-1]) if len(nz) else 0
        else:
            m[i, i] = True
            d = d + 1
            nz = torch.nonzero(m[i, c + 1 :]).flatten()
            c = int(nz[0]) + c + 1 if len(nz) else 0
            p[i] = p[d - 1] + 1
        if i == 0:
            c, d = 0, 0
        if i == 1:
            c, d = 0, 1
    # Algorithm A as printed has no <bos>-backspace rule and its pointer bookkeeping assumes
    # backspaces never reach <bos>; compare only on those sequences (ours covers the rest).
    states = simulate_states(actions)
    if any(a_ == BKSPC and len(s) == 1 for a_, s in zip(actions, states[:-1])):
        return
    t = actions_to_inputs(actions, bos_id=BOS, bkspc_id=BKSPC)
    assert torch.equal(t.mask(), m)
    assert t.input_ids.tolist() == x
    # as printed, the algorithm reads p[-1] (= 0) at i = 0, so its ids are ours shifted by one
    assert t.position_ids.tolist() == [q - p[0] for q in p]


def test_figure2_example():
    words = ["<bos>", "<bkspc>", "<eos>", "<pad>", "Apples", "are", "blue", "green"]
    ids = {w: i for i, w in enumerate(words)}
    acts = [ids[w] for w in ["Apples", "are", "blue", "<bkspc>", "green"]]
    t = actions_to_inputs(acts, bos_id=ids["<bos>"], bkspc_id=ids["<bkspc>"])
    assert [words[i] for i in t.input_ids] == ["<bos>", "Apples", "are", "blue", "are", "green"]
    assert t.position_ids.tolist() == [0, 1, 2, 3, 2, 3]
    assert [words[i] if i >= 0 else "N/A" for i in t.labels] == [
        "Apples", "are", "blue", "<bkspc>", "green", "N/A"]


def test_backspace_at_bos_keeps_bos():
    t = actions_to_inputs([BKSPC, BKSPC, 5, BKSPC, BKSPC], bos_id=BOS, bkspc_id=BKSPC)
    assert t.input_ids.tolist() == [BOS, BOS, BOS, 5, BOS, BOS]
    m = t.mask()
    for i in range(len(t)):
        assert torch.nonzero(m[i]).flatten().tolist()[-1] == i
    assert t.position_ids.tolist() == [0, 0, 0, 1, 0, 0]


def test_terminal_and_truncation():
    t = actions_to_inputs([5, 6, EOS], bos_id=BOS, bkspc_id=BKSPC, eos_id=EOS)
    assert t.terminal
    acts, labs, cut = truncate_actions([5, 6, 7, 8, 9], None, max_inputs=4, eos_id=EOS)
    assert cut and acts == [5, 6, EOS] and labs == [5, 6, 7]
    t = actions_to_inputs(acts, labels=labs, bos_id=BOS, bkspc_id=BKSPC, eos_id=EOS)
    assert t.terminal and t.input_ids.tolist() == [BOS, 5, 6, EOS]
    assert t.labels.tolist() == [5, 6, 7, IGNORE_INDEX]
    acts, labs, cut = truncate_actions([5, 6], None, max_inputs=4, eos_id=EOS)
    assert not cut and acts == [5, 6]


def test_collate_masks_and_padding():
    trajs = [
        actions_to_inputs([4, 5, BKSPC, 6], bos_id=BOS, bkspc_id=BKSPC),
        actions_to_inputs([4], bos_id=BOS, bkspc_id=BKSPC),
    ]
    b = collate(trajs, pad_id=PAD, attn_implementation="sdpa")
    assert b.attention_mask.dtype == torch.bool and b.attention_mask.shape == (2, 1, 5, 5)
    assert torch.equal(b.attention_mask[0, 0], trajs[0].mask())
    assert torch.equal(b.attention_mask[1, 0, :2, :2], trajs[1].mask())
    # padding keys are invisible to everyone; padding queries see only themselves
    assert not b.attention_mask[1, 0, :2, 2:].any()
    for q in range(2, 5):
        assert b.attention_mask[1, 0, q].nonzero().flatten().tolist() == [q]
    assert b.last_index.tolist() == [4, 1]
    e = collate(trajs, pad_id=PAD, attn_implementation="eager", dtype=torch.float32)
    assert e.attention_mask.dtype == torch.float32
    assert torch.equal(e.attention_mask == 0, b.attention_mask)
    assert (e.attention_mask[~b.attention_mask] == torch.finfo(torch.float32).min).all()
    with pytest.raises(ValueError, match="attn_implementation"):
        collate(trajs, pad_id=PAD, attn_implementation="flash_attention_9")


def test_visibility_mask_batched_matches_loop():
    death = torch.tensor([[3, 2, 3], [1, 3, 3]])
    m = visibility_mask(death)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                assert bool(m[b, i, j]) == (j <= i < int(death[b, j]))


# ---------------------------------------------------------------- real transformers models

def _tiny_model(arch, attn):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                         bos_token_id=BOS, eos_token_id=EOS)
        model = GPT2LMHeadModel(cfg)
    else:
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                          bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
        model = LlamaForCausalLM(cfg)
    model.config._attn_implementation = attn
    model.set_attn_implementation(attn)
    return model.eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_single_pass_logits_equal_per_state_logits(arch, attn):
    model = _tiny_model(arch, attn)
    seqs = [
        [4, 5, 6, BKSPC, 7, BKSPC, BKSPC, 8, 9],  # backspace runs
        [BKSPC, 4, BKSPC, BKSPC, 5, 6],  # backspaces at <bos>
        [4, 5, 6, 7],  # no backspace, shorter (padding)
        [9],
    ]
    trajs = [actions_to_inputs(s, bos_id=BOS, bkspc_id=BKSPC) for s in seqs]
    batch = collate(trajs, pad_id=PAD, attn_implementation=attn)
    with torch.no_grad():
        logits = model(**batch.model_inputs()).logits
        for b, s in enumerate(seqs):
            for i, state in enumerate(simulate_states(s)):
                ref = model(input_ids=torch.tensor([state])).logits[0, -1]
                diff = (logits[b, i] - ref).abs().max().item()
                assert diff < 1e-5, (arch, attn, b, i, diff)


def test_4d_mask_equals_its_definition_on_random_padded_batches():
    """attention_mask_4d builds in two passes what its definition says: visibility from death for
    real keys, nothing for padding keys, and padding queries see themselves."""
    from seqmatch.actions import attention_mask_4d

    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        trajs = []
        for _ in range(3):
            n = int(torch.randint(1, 12, (1,), generator=g))
            acts = torch.randint(4, 9, (n,), generator=g).tolist()
            acts = [BKSPC if torch.rand(1, generator=g) < 0.3 else a for a in acts]
            trajs.append(actions_to_inputs(acts, bos_id=BOS, bkspc_id=BKSPC))
        b = collate(trajs, pad_id=PAD, pad_to=16)
        T = b.death.shape[-1]
        ref = visibility_mask(b.death) & b.state_mask.unsqueeze(-2)
        ref = ref | (torch.eye(T, dtype=torch.bool) & ~b.state_mask.unsqueeze(-1))
        assert torch.equal(attention_mask_4d(b.death, b.state_mask)[:, 0], ref)
