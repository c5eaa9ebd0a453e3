"""seqmatch.model: <bkspc> rows, offset head, LoRA / QLoRA, masks, save/load round trip.

References are independent of the code under test: the plain transformers model run with its own
default causal mask, gradients checked with autograd on a simple loss, reloaded logits compared
with the logits before saving.
"""

import dataclasses
import json
import os
import warnings

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from seqmatch.actions import BKSPC_TOKEN, actions_to_inputs, collate
from seqmatch.model import ModelConfig, SeqMatchLM, bnb_config, build_model, load_model, save_model

WORDS = [chr(97 + i) for i in range(20)]


def tiny_tokenizer(with_bkspc: bool = False) -> PreTrainedTokenizerFast:
    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    if with_bkspc:
        tok.add_special_tokens({"additional_special_tokens": [BKSPC_TOKEN]})
    return tok


def tiny_cfg(arch: str, **kw) -> ModelConfig:
    return ModelConfig(**{"arch": arch, "n_layer": 2, "n_head": 4, "d_model": 32, "d_ff": 64,
                          "max_position_embeddings": 64, **kw})


def batch_for(model, action_lists, attn="sdpa"):
    trajs = [
        actions_to_inputs(a, bos_id=model.bos_id, bkspc_id=model.bkspc_id, eos_id=model.eos_id) for a in action_lists
    ]
    return collate(trajs, pad_id=model.pad_id, attn_implementation=attn)


def some_actions(model):
    bk, eos = model.bkspc_id, model.eos_id
    return [[4, 5, 6, bk, 7, eos], [bk, 8, bk, bk, 9, 10], [11, 12]]


@pytest.fixture(scope="module")
def base_dirs(tmp_path_factory):
    """Tiny pretrained-looking checkpoints (full save) for each architecture, to LoRA on top."""
    out = {}
    for arch in ("llama", "gpt2"):
        torch.manual_seed(1)
        tok = tiny_tokenizer()
        m = build_model(tiny_cfg(arch), tok)
        d = tmp_path_factory.mktemp(f"base_{arch}")
        save_model(m, tok, d)
        out[arch] = str(d)  # transformers loads the saved directory as it is
    return out


def test_config_fields_and_defaults():
    names = [f.name for f in dataclasses.fields(ModelConfig)]
    for n in ["name_or_path", "arch", "n_layer", "n_head", "d_model", "d_ff", "max_position_embeddings",
              "attn_implementation", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
              "load_in_4bit", "gradient_checkpointing", "offset_head", "torch_dtype", "trust_remote_code"]:
        assert n in names
    c = ModelConfig()
    assert c.name_or_path is None and c.attn_implementation == "sdpa" and c.lora_r == 0 and c.lora_alpha == 16
    assert c.trust_remote_code is False and c.load_in_4bit is False and c.offset_head is True
    assert c.offset_head_hidden == 8
    assert all(f.metadata.get("help") for f in dataclasses.fields(ModelConfig))  # every field documented


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_build_adds_bkspc_and_ids(arch):
    tok = tiny_tokenizer()
    n0 = len(tok)
    m = build_model(tiny_cfg(arch), tok)
    assert isinstance(m, SeqMatchLM)
    assert len(tok) == n0 + 1 and tok.convert_tokens_to_ids(BKSPC_TOKEN) == m.bkspc_id == n0
    assert (m.bos_id, m.eos_id, m.pad_id) == (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert m.vocab_size == len(tok)
    assert m.config.arch == arch and m.attn_implementation == "sdpa"
    b = batch_for(m, some_actions(m))
    out = m(**b.model_inputs())
    assert out.logits.shape == (3, b.input_ids.shape[1], len(tok))
    assert out.hidden_states.shape == (3, b.input_ids.shape[1], 32)
    # an existing <bkspc> is reused, not added twice
    tok2 = tiny_tokenizer(with_bkspc=True)
    n2 = len(tok2)
    m2 = build_model(tiny_cfg(arch), tok2)
    assert len(tok2) == n2 and m2.bkspc_id == n2 - 1


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_forward_matches_plain_hf_on_prefixes(arch, attn):
    """Logits of state i (Algorithm A inputs, 4-D mask) equal the plain transformers model run on
    that state's tokens with its own causal mask, plus the offset head."""
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    m = build_model(tiny_cfg(arch, attn_implementation=attn), tok).eval()
    acts = some_actions(m)
    with torch.no_grad():
        for mask_kind in (attn, "sdpa"):  # collate's native mask, and a bool mask (converted for eager)
            b = batch_for(m, acts, attn=mask_kind)
            got = m(**b.model_inputs()).logits
            for r, a in enumerate(acts):
                for i in range(len(a) + 1):
                    state = [m.bos_id]
                    for x in a[:i]:
                        if x == m.bkspc_id:
                            if len(state) > 1:
                                state.pop()
                        else:
                            state.append(x)
                    ids = torch.tensor([state])
                    hf = m.hf_model(input_ids=ids)  # transformers' own causal mask, default positions
                    h = m.hf_model.base_model(input_ids=ids).last_hidden_state[:, -1:]
                    pos = torch.tensor([[len(state) - 1]])
                    want = hf.logits[0, -1] + m.offset_head(h, pos)[0, 0]
                    assert (got[r, i] - want).abs().max() < 1e-4, (arch, attn, mask_kind, r, i)


def test_mask_required():
    m = build_model(tiny_cfg("llama"), tiny_tokenizer())
    ids = torch.tensor([[1, 4, 5]])
    with pytest.raises(ValueError, match="4-D"):
        m(input_ids=ids, position_ids=torch.arange(3)[None], attention_mask=None)
    with pytest.raises(ValueError, match="4-D"):
        m(input_ids=ids, position_ids=torch.arange(3)[None], attention_mask=torch.ones(1, 3))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_full_finetune_grads_reach_bkspc_row_and_head(arch):
    torch.manual_seed(0)
    m = build_model(tiny_cfg(arch), tiny_tokenizer())
    b = batch_for(m, some_actions(m))
    out = m(**b.model_inputs())
    # V(s) = logsumexp: the offset head's scalar shift matters for it (not for cross-entropy)
    loss = out.logits.logsumexp(-1).sum() + torch.nn.functional.cross_entropy(
        out.logits.flatten(0, 1), b.labels.flatten(), ignore_index=-100
    )
    loss.backward()
    W = m.hf_model.get_output_embeddings().weight
    assert W.grad is not None and W.grad[m.bkspc_id].abs().sum() > 0
    for n, p in m.offset_head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n
    assert all(p.requires_grad for p in m.parameters())


def test_offset_head_is_a_per_position_shift():
    """The head adds one scalar per position: the policy softmax is the base model's."""
    torch.manual_seed(0)
    m = build_model(tiny_cfg("llama"), tiny_tokenizer()).eval()
    b = batch_for(m, some_actions(m))
    with torch.no_grad():
        with_head = m(**b.model_inputs()).logits
        m.offset_head = None
        without = m(**b.model_inputs()).logits
    diff = with_head - without
    assert diff.abs().max() > 1e-6
    assert (diff - diff[..., :1]).abs().max() < 1e-5
    assert torch.allclose(with_head.softmax(-1), without.softmax(-1), atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_freezes_base_and_trains_new_rows(arch, base_dirs):
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    m = build_model(tiny_cfg(arch, name_or_path=base_dirs[arch], lora_r=4, lora_alpha=8), tok)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("lora_B" in n for n in trainable)
    assert any("trainable_tokens_delta" in n for n in trainable)
    assert {n for n in trainable if n.startswith("offset_head")} == {
        "offset_head.fc1.weight", "offset_head.fc1.bias", "offset_head.fc2.weight", "offset_head.fc2.bias"}
    for n, p in m.named_parameters():
        if not p.requires_grad:
            continue
        assert "lora_" in n or "trainable_tokens_delta" in n or n.startswith("offset_head"), n
    frozen_before = {n: p.detach().clone() for n, p in m.named_parameters() if not p.requires_grad}
    assert any("embed" in n or "wte" in n for n in frozen_before)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    b = batch_for(m, some_actions(m))
    for _ in range(2):
        out = m(**b.model_inputs())
        loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), b.labels.flatten(), ignore_index=-100)
        loss = loss + out.logits.logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        grads = {n: p.grad for n, p in m.named_parameters() if p.requires_grad}
        opt.step()
    # the <bkspc> unembedding row is trained (for tied GPT-2 it is the one shared row)
    out_rows = [g for n, g in grads.items() if "trainable_tokens_delta" in n and g is not None and g.abs().sum() > 0]
    assert out_rows, "the <bkspc> row got no gradient"
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("offset_head"))
    for n, p in m.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), f"frozen weight {n} changed"
    # the model's output for <bkspc> uses the trained row
    with torch.no_grad():
        hidden = m(**b.model_inputs()).hidden_states
        W_eff = m.hf_model.get_output_embeddings()(torch.eye(hidden.shape[-1]))  # [d, V] = W^T
        base_W = [p for n, p in frozen_before.items() if "lm_head" in n] or [
            p for n, p in frozen_before.items() if "wte" in n]  # GPT-2: the unembedding is wte
        assert not torch.allclose(W_eff[:, m.bkspc_id], base_W[0][m.bkspc_id])
        assert torch.allclose(W_eff[:, :m.bkspc_id], base_W[0][:m.bkspc_id].T, atol=1e-6)


@pytest.mark.parametrize("spec", [["q_proj", "v_proj"], "q_proj,v_proj", ["all-linear"]])
def test_lora_target_modules_forms(spec, base_dirs):
    m = build_model(tiny_cfg("llama", name_or_path=base_dirs["llama"], lora_r=2, lora_target_modules=spec),
                    tiny_tokenizer())
    lora = {n.split(".lora_A")[0].split(".")[-1] for n, _ in m.named_parameters() if "lora_A" in n}
    if spec == ["all-linear"]:
        assert lora == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    else:
        assert lora == {"q_proj", "v_proj"}


def test_gradient_checkpointing_same_grads():
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    m1 = build_model(tiny_cfg("llama"), tok)
    m2 = build_model(tiny_cfg("llama", gradient_checkpointing=True), tiny_tokenizer())
    m2.load_state_dict(m1.state_dict())
    assert any(getattr(mod, "gradient_checkpointing", False) for mod in m2.hf_model.modules())
    b = batch_for(m1, some_actions(m1))
    gs = []
    for m in (m1, m2):
        m.train()
        m(**b.model_inputs()).logits.logsumexp(-1).sum().backward()
        gs.append({n: p.grad.clone() for n, p in m.named_parameters()})
    for n in gs[0]:
        assert torch.allclose(gs[0][n], gs[1][n], atol=1e-5), n


@pytest.mark.parametrize("arch,lora", [("llama", 0), ("gpt2", 0), ("llama", 4), ("gpt2", 4)])
def test_save_load_roundtrip_identical_logits(arch, lora, base_dirs, tmp_path):
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    cfg = tiny_cfg(arch, lora_r=lora, name_or_path=base_dirs[arch] if lora else None)
    m = build_model(cfg, tok)
    # move every trainable weight away from its initial value so the round trip is not trivial
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    save_model(m, tok, tmp_path)
    files = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path) for f in fs]
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for f in files), files
    assert any(f.endswith(".safetensors") for f in files)
    meta = json.loads((tmp_path / "seqmatch_model.json").read_text())
    assert meta["model_config"] == dataclasses.asdict(cfg) and meta["bkspc_id"] == m.bkspc_id
    assert (tmp_path / ("adapter_config.json" if lora else "config.json")).is_file()
    m2, tok2 = load_model(tmp_path)
    assert m2.config == cfg and len(tok2) == len(tok)
    assert (m2.bkspc_id, m2.bos_id, m2.eos_id, m2.pad_id) == (m.bkspc_id, m.bos_id, m.eos_id, m.pad_id)
    assert tok2.convert_tokens_to_ids(BKSPC_TOKEN) == m.bkspc_id
    assert tok2("a b <bkspc> c").input_ids == tok("a b <bkspc> c").input_ids
    m.eval(), m2.eval()
    b = batch_for(m, some_actions(m))
    with torch.no_grad():
        assert torch.equal(m(**b.model_inputs()).logits, m2(**b.model_inputs()).logits)
    if lora:
        assert m2.is_peft and any(p.requires_grad for n, p in m2.named_parameters() if "lora_" in n)


def test_load_never_unpickles(tmp_path, monkeypatch):
    tok = tiny_tokenizer()
    m = build_model(tiny_cfg("gpt2"), tok)
    save_model(m, tok, tmp_path)
    import pickle

    def boom(*a, **k):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    real_load = torch.load

    def safe_only(*a, **k):
        assert k.get("weights_only", True) is True
        return real_load(*a, **k)

    monkeypatch.setattr(torch, "load", safe_only)
    load_model(tmp_path)


def test_trust_remote_code_off_by_default(base_dirs, monkeypatch):
    import transformers

    seen = {}
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    build_model(tiny_cfg("llama", name_or_path=base_dirs["llama"]), tiny_tokenizer())
    assert seen["trust_remote_code"] is False and seen["attn_implementation"] == "sdpa"


def test_bnb_config_is_qlora_nf4():
    q = bnb_config(ModelConfig(name_or_path="x", lora_r=64, load_in_4bit=True), cuda=True)
    assert q.load_in_4bit and not q.load_in_8bit
    assert q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert bnb_config(ModelConfig(), cuda=False).bnb_4bit_compute_dtype == torch.float32
    with pytest.raises(ValueError, match="4bit"):
        build_model(tiny_cfg("llama", load_in_4bit=True, lora_r=4), tiny_tokenizer())


def test_qlora_loads_and_trains_on_cpu(tmp_path):
    """bitsandbytes 0.50 quantizes to NF4 on CPU: load, forward, backward, save, reload."""
    try:
        import bitsandbytes as bnb
    except Exception as e:  # pragma: no cover
        pytest.skip(f"bitsandbytes not importable: {e}")
    # bitsandbytes' CPU path (avx512-bf16 machines, eval mode) repacks weights in blocks of 64
    # input features, so this base is 64 wide (a 32-wide one fails inside bitsandbytes).
    torch.manual_seed(1)
    tok = tiny_tokenizer()
    wide = dict(d_model=64, d_ff=128)
    base = tmp_path / "base"
    save_model(build_model(tiny_cfg("llama", **wide), tok), tok, base)
    torch.manual_seed(0)
    cfg = tiny_cfg("llama", name_or_path=str(base), lora_r=4, load_in_4bit=True, **wide)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = build_model(cfg, tok, device="cpu")
    except Exception as e:  # pragma: no cover - depends on the bitsandbytes build
        pytest.skip(f"bitsandbytes 4-bit load is not available on this machine: {type(e).__name__}: {e}")
    q = [mod for mod in m.modules() if isinstance(mod, bnb.nn.Linear4bit)]
    assert q and all(mod.weight.quant_type == "nf4" for mod in q)
    b = batch_for(m, some_actions(m))
    out = m(**b.model_inputs())
    out.logits.logsumexp(-1).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in m.named_parameters() if "lora_B" in n)
    # the 4-bit model agrees with the full-precision one up to quantisation error
    full = build_model(tiny_cfg("llama", name_or_path=str(base), **wide), tiny_tokenizer())
    full.offset_head.load_state_dict(m.offset_head.state_dict())
    m.eval(), full.eval()
    with torch.no_grad():
        lq, lf = m(**b.model_inputs()).logits, full(**b.model_inputs()).logits
    assert (lq - lf).abs().max() < 0.5
    save_model(m, tok, tmp_path / "q")
    m2, _ = load_model(tmp_path / "q")
    m2.eval()
    with torch.no_grad():
        assert torch.allclose(m2(**b.model_inputs()).logits, lq, atol=1e-5)
