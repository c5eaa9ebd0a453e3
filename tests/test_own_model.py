"""A researcher's own pretrained model and its tokenizer (issue 23): a tiny GPT-NeoX (bos = eos, as
GPT-NeoX's tokenizers) and a tiny Qwen2 (no bos token at all, embedding rows beyond the tokenizer,
as every Qwen2/2.5 checkpoint), each saved with ``save_pretrained`` here, tokenizers built with the
``tokenizers`` library (no hub).

References are independent of the code under test: the saved checkpoint's own weights (read back
with safetensors), a from-scratch recomputation of each state's logits, and a model whose output
head is replaced so that it always says eos.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from seqmatch.actions import apply_backspaces
from seqmatch.data import load_tokenizer, train_tokenizer
from seqmatch.model import ModelConfig, build_model, load_model, save_model
from seqmatch.sampling import generate

ROOT = Path(__file__).resolve().parents[1]
QA = [{"question": f"reverse: {w}", "answer": w[::-1]} for w in
      ("abc", "hello", "tree", "moon", "gaeh", "xyzw", "kite", "lamp", "rose", "sand")]
TEXTS = [f"{r['question']} Solution: {r['answer']}" for r in QA] * 3
QWEN_EXTRA_ROWS = 16  # Qwen2 checkpoints have more embedding rows than tokens


def bpe(specials: list[str], **special_tokens) -> PreTrainedTokenizerFast:
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tk, **special_tokens)


def save_tiny_models(d: Path) -> dict[str, Path]:
    """models/tiny-neox and models/tiny-qwen2 under ``d``, each with its own tokenizer."""
    torch.manual_seed(0)
    qwen_tok = bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos_token="<|endoftext|>",
                   pad_token="<|endoftext|>")  # Qwen2's base tokenizers: no bos, pad = eos
    assert qwen_tok.bos_token is None
    qwen = d / "tiny-qwen2"
    qwen_tok.save_pretrained(qwen)
    Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(qwen_tok) + QWEN_EXTRA_ROWS, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128, tie_word_embeddings=False,
        eos_token_id=qwen_tok.eos_token_id)).save_pretrained(qwen)
    neox_tok = bpe(["<|endoftext|>", "<|padding|>"], bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    neox = d / "tiny-neox"
    neox_tok.save_pretrained(neox)
    GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=len(neox_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=128, bos_token_id=neox_tok.bos_token_id,
        eos_token_id=neox_tok.eos_token_id)).save_pretrained(neox)
    return {"qwen2": qwen, "neox": neox}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return save_tiny_models(tmp_path_factory.mktemp("models"))


def own(path: Path, **kw):
    tok = load_tokenizer(str(path))
    torch.manual_seed(0)
    return build_model(ModelConfig(name_or_path=str(path), **kw), tok), tok


def test_qwen2_without_bos_starts_with_eos_and_its_new_rows_are_the_mean(tiny):
    model, tok = own(tiny["qwen2"])
    n_tok = 300  # the model's own tokenizer; load_tokenizer adds <bkspc> (Qwen2 has a pad: no <pad> added)
    assert len(tok) == n_tok + 1 and tok.bos_token is None
    assert model.bos_id == model.eos_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert model.bkspc_id == n_tok
    # the checkpoint had 316 rows: cut to the tokenizer's 301, the <bkspc> row (an old padding row)
    # set to the mean of the rows of the model's own tokens, in the input and the output embeddings
    saved = load_file(str(tiny["qwen2"] / "model.safetensors"))
    hf = model.hf_model
    for name, now in (("model.embed_tokens.weight", hf.get_input_embeddings().weight),
                      ("lm_head.weight", hf.get_output_embeddings().weight)):
        old = saved[name]
        assert old.shape[0] == n_tok + QWEN_EXTRA_ROWS and now.shape[0] == n_tok + 1
        assert torch.equal(now[:n_tok], old[:n_tok])  # the pretrained rows are the model's own
        assert torch.allclose(now[n_tok], old[:n_tok].mean(0), atol=1e-6)
        assert not torch.allclose(now[n_tok], old[n_tok], atol=1e-3)


@pytest.mark.parametrize("name", ["qwen2", "neox"])
def test_generation_sees_the_states_training_sees(tiny, name, tmp_path):
    """Every logit the sampler uses equals the state's logits recomputed from scratch from the
    model's bos (eos for Qwen2), also after the model is saved and loaded as evaluation loads it."""
    model, tok = own(tiny[name])
    save_model(model, tok, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    assert (loaded.bos_id, loaded.eos_id, loaded.bkspc_id) == (model.bos_id, model.eos_id, model.bkspc_id)
    for m in (model.eval(), loaded.eval()):
        prompt = tok("reverse: moon Solution:", add_special_tokens=False)["input_ids"]
        bk = m.bkspc_id
        forced = [[40, 41, bk, 42, bk, bk, bk, 43, m.eos_id]]
        out = generate(m, [prompt], max_new_tokens=12, eos_id=m.eos_id, bkspc_id=bk, bos_id=m.bos_id,
                       forced_actions=forced, return_step_logits=True)
        assert out.finished == [True]
        for t in range(len(forced[0])):
            state = [m.bos_id] + apply_backspaces(prompt + forced[0][:t], bk)
            n = len(state)
            with torch.no_grad():
                ref = m(input_ids=torch.tensor([state]), position_ids=torch.arange(n)[None],
                        attention_mask=torch.ones(n, n, dtype=torch.bool).tril()[None, None]).logits[0, -1]
            assert (out.step_logits[0][t] - ref).abs().max() < 1e-4, (name, t)


def test_a_tokenizer_not_the_models_own_is_refused_unless_new_tokenizer(tiny, tmp_path):
    corpus = [r["question"] + " Solution: " + r["answer"] for r in QA]
    bpe_tok = train_tokenizer(corpus, vocab_size=280, out_dir=tmp_path / "bpe")
    with pytest.raises(ValueError) as e:
        build_model(ModelConfig(name_or_path=str(tiny["neox"])), load_tokenizer(str(tmp_path / "bpe")))
    msg = str(e.value)
    assert "is not model" in msg and "own" in msg and "model.new_tokenizer: true" in msg, msg
    # knowingly: resized to the BPE tokenizer
    m = build_model(ModelConfig(name_or_path=str(tiny["neox"]), new_tokenizer=True), load_tokenizer(str(tmp_path / "bpe")))
    assert m.vocab_size == len(bpe_tok) and m.bkspc_id == bpe_tok.convert_tokens_to_ids("<bkspc>")


def test_sm_rollouts_can_end_when_eos_is_also_bos_and_pad(tiny, tmp_path):
    """Qwen2's eos is also its pad (and here its bos): training rollouts must still be able to end.
    The model's output head is replaced by one that always says eos: every rollout ends at once."""
    from seqmatch.config import SequenceMatchConfig
    from seqmatch.train import SequenceMatchTrainer

    rows = [{"prompt": f"{r['question']} Solution:", "completion": " " + r["answer"]} for r in QA]
    load_tokenizer(str(tiny["qwen2"])).save_pretrained(tmp_path / "tok")
    cfg = SequenceMatchConfig(method="sm", output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2,
                              bc_warmup_steps=1, max_len=48, gen_batch_size=4, max_new_tokens=8, replay_capacity=8,
                              noise="random", eta=0.1)
    trainer = SequenceMatchTrainer(model=ModelConfig(name_or_path=str(tiny["qwen2"])), args=cfg, train_dataset=rows,
                                   processing_class=str(tmp_path / "tok"))
    assert trainer.bos == trainer.eos == trainer.pad
    hf = trainer.accel.unwrap_model(trainer.model).hf_model
    head = torch.nn.Linear(32, hf.get_output_embeddings().weight.shape[0], bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[trainer.eos] = 50.0
    hf.set_output_embeddings(head)
    trainer.fill_buffer()
    assert trainer.rollout_stats["rollout_finished"] == 1.0 and trainer.rollout_stats["rollout_len"] == 1.0


def test_ground_truth_noise_on_rows_without_a_base_is_refused(tiny, tmp_path):
    """An own qa task's rows have no base unless its config gives one: seqmatch.train refuses
    ground-truth noise on them (not digits of base 10) before it writes anything."""
    rows = [{"prompt": f"{r['question']} Solution:", "completion": " " + r["answer"]} for r in QA]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = subprocess.run([sys.executable, "-m", "seqmatch.train", "--method", "bc", "--train-file", "train.jsonl",
                          "--tokenizer", str(tiny["neox"]), "--name-or-path", str(tiny["neox"]), "--out-dir", "run",
                          "--noise", "ground_truth", "--eta", "0.1", "--steps", "2", "--max-len", "48"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: train.jsonl: row 1 has no 'base'") and "tasks.<task>.data.base" in last, last
    assert not (tmp_path / "run").exists()
