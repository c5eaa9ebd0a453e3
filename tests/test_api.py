"""The Python API as a TRL user meets it (SequenceMatchConfig, SequenceMatchTrainer, callbacks,
report_to, evaluation, the saved model, seqmatch.generate), in TRL's manner: tiny models of three
architectures built here (no hub), in-memory data, a few steps of every method."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import seqmatch
from seqmatch import SequenceMatchConfig, SequenceMatchTrainer

REPO = Path(__file__).resolve().parents[1]
WORDS = ["<bos>", "<eos>", "<pad>", "Solution:"] + [str(i) for i in range(8)]


def tokenizer():
    """A word-level tokenizer without <bkspc> (the trainer adds it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def tiny_model(arch: str):
    """A randomly initialised transformers model (seed 0), as a user would pass one."""
    from transformers import (GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                              Qwen2ForCausalLM)

    common = dict(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    torch.manual_seed(0)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**common))
    if arch == "gpt_neox":
        return GPTNeoXForCausalLM(GPTNeoXConfig(**common))
    return Qwen2ForCausalLM(Qwen2Config(**common, num_key_value_heads=1, tie_word_embeddings=True))


def copy_rows(n=48, seed=0):
    """Copy task as question/answer rows ('a b c' -> 'a b c')."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        xs = " ".join(str(int(v)) for v in torch.randint(0, 8, (3,), generator=g))
        rows.append({"question": xs, "answer": xs})
    return rows


def args(out, **kw):
    base = dict(output_dir=str(out), max_steps=6, per_device_train_batch_size=4, learning_rate=1e-2, warmup_steps=1,
                save_steps=0, max_len=16, eta=0.2, noise="random", bc_warmup_steps=2, beta_anneal_steps=2,
                replay_capacity=8, replay_reuse=2, gen_batch_size=4, model_rows=2, max_new_tokens=6,
                mask_prompt=True, per_device_eval_batch_size=4)
    return SequenceMatchConfig(**{**base, **kw})


@pytest.mark.parametrize("arch", ["llama", "gpt_neox", "qwen2"])
@pytest.mark.parametrize("method", ["mle", "bc", "sm", "ulk"])
def test_every_method_trains_every_parameter_of_three_architectures(tmp_path, arch, method):
    """model: a transformers object, data: a datasets.Dataset of question/answer rows, tokenizer:
    an object without <bkspc>. Every trainable parameter moves from its value before training
    (the copy taken here), except the offset head under MLE, BC and ULK: a scalar added to every
    logit of a position cancels in the cross-entropy, so its exact gradient is 0 there. An eval
    metric comes back."""
    from datasets import Dataset

    tok = tokenizer()
    trainer = SequenceMatchTrainer(model=tiny_model(arch), args=args(tmp_path, method=method),
                                   train_dataset=Dataset.from_list(copy_rows()), eval_dataset=copy_rows(4, seed=1),
                                   processing_class=tok)
    assert tok.convert_tokens_to_ids("<bkspc>") == len(WORDS)  # added, and the model resized to it
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    summary = trainer.train()
    after = dict(trainer.model.named_parameters())
    exempt = () if method == "sm" else ("offset_head.",)
    unchanged = [n for n, p in before.items() if not n.startswith(exempt) and torch.equal(p, after[n])]
    assert not unchanged, unchanged
    assert len(before) > 5 and summary["steps"] == 6
    ev = summary["eval"]
    assert 0 <= ev["eval_accuracy"] <= 1 and ev["eval_loss"] > 0 and ev["eval_perplexity"] > 1
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == list(range(1, 7))


def test_a_model_path_with_model_init_kwargs_and_its_own_tokenizer(tmp_path):
    """model: a local directory (as a hub id would be), built with args.model_init_kwargs (LoRA
    here); no processing_class: the tokenizer is the model's own. Only LoRA weights, the <bkspc>
    rows and the offset head train; the base stays as it was; the saved model is the adapter."""
    base = tmp_path / "base"
    tiny_model("qwen2").save_pretrained(base)
    tokenizer().save_pretrained(base)
    tr = SequenceMatchTrainer(model=str(base), args=args(tmp_path / "out", method="bc",
                                                         model_init_kwargs={"lora_r": 4, "lora_alpha": 8}),
                              train_dataset=copy_rows())
    assert tr.model_cfg.lora_r == 4 and tr.model_cfg.name_or_path == str(base)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    tr.train()
    changed = {n for n, p in tr.model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in tr.model.named_parameters() if p.requires_grad}
    assert changed <= trainable and any("lora_" in n for n in changed)
    assert (tmp_path / "out" / "model" / "adapter_config.json").is_file()
    with pytest.raises(ValueError, match="model_init_kwargs apply to a model path or object"):
        SequenceMatchTrainer(model=seqmatch.ModelConfig(), args=args(tmp_path / "x", model_init_kwargs={"lora_r": 4}),
                             train_dataset=copy_rows(), processing_class=tokenizer())


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    """An SM run stopped by a callback after step 4 (control.should_training_stop), then trained
    again with a fresh model object and resume_from_checkpoint=True, ends bit-identical to the run
    trained straight through: weights and every log line."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 4

    def run(out, callbacks=(), resume=None):
        tr = SequenceMatchTrainer(model=tiny_model("llama"), args=args(out, method="sm", max_steps=8, save_steps=3),
                                  train_dataset=copy_rows(), processing_class=tokenizer(), callbacks=list(callbacks))
        return tr, tr.train(resume_from_checkpoint=resume)

    full, _ = run(tmp_path / "full")
    _, stopped = run(tmp_path / "cut", [StopAt()])
    assert stopped == {"method": "sm", "steps": 4, "stopped_early": True}
    assert not (tmp_path / "cut" / "summary.json").exists()  # not a finished run
    resumed, summary = run(tmp_path / "cut", resume=True)
    assert summary["steps"] == 8
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(a, b), name
    logs = [(tmp_path / d / "train_log.jsonl").read_text().splitlines() for d in ("full", "cut")]
    strip = [[{k: v for k, v in json.loads(l).items() if k not in ("grad_time", "tokens_per_s", "sample_time")}
              for l in log] for log in logs]
    assert strip[0] == strip[1] and len(strip[0]) == 8
    with pytest.raises(ValueError, match="resume_from_checkpoint=True"):
        run(tmp_path / "empty", resume=True)


def test_callbacks_see_every_log_line_and_the_evaluations(tmp_path):
    """on_log gets each train_log.jsonl line's numbers (global_step = its step + 1), on_evaluate the
    eval metrics every eval_steps and at the end, on_step_end every step."""
    seen = {"log": [], "eval": [], "steps": []}

    class Recorder:  # no TrainerCallback base: the method names are the protocol
        def on_log(self, args, state, control, logs=None, **kw):
            seen["log"].append((state.global_step, dict(logs)))

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            seen["eval"].append((state.global_step, dict(metrics)))

        def on_step_end(self, args, state, control, **kw):
            seen["steps"].append(state.global_step)

    tr = SequenceMatchTrainer(model=seqmatch.ModelConfig(n_layer=1, n_head=2, d_model=16, d_ff=32,
                                                         max_position_embeddings=64),
                              args=args(tmp_path, method="bc", logging_steps=2, eval_steps=4),
                              train_dataset=copy_rows(), eval_dataset=copy_rows(3, seed=2), processing_class=tokenizer(),
                              callbacks=[Recorder()])
    tr.train()
    lines = [json.loads(l) for l in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    train_logs = [(s, l) for s, l in seen["log"] if "loss" in l]
    assert [s for s, _ in train_logs] == [r["step"] + 1 for r in lines] == [1, 3, 5, 6]
    for (_, logged), line in zip(train_logs, lines):
        assert logged == {k: (int(v) if isinstance(v, bool) else v) for k, v in line.items() if k != "step"}
    assert [s for s, _ in seen["eval"]] == [4, 6] and seen["steps"] == list(range(1, 7))
    assert {"eval_loss", "eval_accuracy", "eval_perplexity", "eval_bkspc_rate"} <= set(seen["eval"][-1][1])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["eval"] == seen["eval"][-1][1]


def test_tensorboard_scalars_are_the_train_log_values(tmp_path):
    """report_to='tensorboard': the event file, read back with tensorboard's EventAccumulator, holds
    every number of every train_log.jsonl line (loss parts, beta, V at the initial and final
    states, rollout length and <bkspc> rate, grad norm, lr) at step + 1, and the eval accuracy."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tr = SequenceMatchTrainer(model=tiny_model("llama"),
                              args=args(tmp_path, method="sm", max_steps=8, report_to="tensorboard"),
                              train_dataset=copy_rows(), eval_dataset=copy_rows(3, seed=2), processing_class=tokenizer())
    tr.train()
    events = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    lines = [json.loads(l) for l in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    sm_lines = [r for r in lines if r["beta"] < 1]
    assert sm_lines
    for key in ("sm_loss", "sm_phi", "sm_value_data", "sm_terminal", "sm_value_model", "sm_regularizer",
                "sm_v0_data", "sm_v0_model", "sm_v_final_data", "sm_v_final_model", "rollout_len",
                "rollout_bkspc_rate", "beta", "grad_norm", "lr", "ce", "loss"):
        assert f"train/{key}" in tags, key
    for key in {k for r in lines for k, v in r.items() if isinstance(v, (int, float)) and k != "step"}:
        points = {e.step: e.value for e in acc.Scalars(f"train/{key}")}
        want = {r["step"] + 1: float(r[key]) for r in lines if key in r}
        assert points.keys() == want.keys(), key
        for step, value in want.items():
            assert points[step] == pytest.approx(value, rel=1e-6, abs=1e-6), (key, step)  # float32 in the file
    assert [e.step for e in acc.Scalars("eval/accuracy")] == [8]
    assert acc.Scalars("eval/accuracy")[0].value == pytest.approx(tr.last_eval["eval_accuracy"])


def test_the_saved_model_loads_in_plain_transformers(tmp_path, caplog):
    """output_dir/model loads with AutoModelForCausalLM / AutoTokenizer as it is, without a warning,
    and gives the policy's next-token distribution (the offset head, which it leaves out, shifts
    every logit of a position by one number); seqmatch.generate samples the same actions from it
    as from seqmatch.load_model's model; the model card says how and why."""
    import logging

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tr = SequenceMatchTrainer(model=tiny_model("qwen2"), args=args(tmp_path, method="sm"), train_dataset=copy_rows(),
                              eval_dataset=copy_rows(3, seed=2), processing_class=tokenizer())
    tr.train()
    d = tmp_path / "model"
    with caplog.at_level(logging.WARNING, logger="transformers"):
        plain = AutoModelForCausalLM.from_pretrained(d)
        tok = AutoTokenizer.from_pretrained(d)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    policy, tok2 = seqmatch.load_model(d)
    policy.eval()
    assert tok.convert_tokens_to_ids("<bkspc>") == policy.bkspc_id == tok2.convert_tokens_to_ids("<bkspc>")
    ids = torch.tensor([[policy.bos_id] + tok("1 2 3 Solution: 1 2", add_special_tokens=False).input_ids])
    with torch.no_grad():
        want = policy(input_ids=ids, position_ids=torch.arange(ids.shape[1])[None],
                      attention_mask=torch.ones(1, 1, ids.shape[1], ids.shape[1], dtype=torch.bool).tril()).logits
        got = plain(input_ids=ids).logits
    offset = want - got  # one number per position, the same for every token
    assert torch.allclose(offset, offset[..., :1].expand_as(offset), atol=1e-4)
    assert offset.abs().max() > 1e-3  # the head is there, and trained
    assert torch.allclose(torch.softmax(want, -1), torch.softmax(got, -1), atol=1e-5)
    prompts = ["1 2 3 Solution:", "4 5 Solution:"]
    a = seqmatch.generate(policy, tok2, prompts, max_new_tokens=8, seed=3)
    b = seqmatch.generate(plain, tok, prompts, max_new_tokens=8, seed=3)
    assert a.action_ids == b.action_ids and a.texts == b.texts
    card = (d / "README.md").read_text()
    for text in ("SequenceMatch", "seqmatch.generate", "LogitsProcessor", "KV cache", "offset", "eval_accuracy",
                 "`alpha`"):
        assert text in card, text


def test_generate_applies_backspaces():
    """seqmatch.generate's texts are the actions with every <bkspc> applied, checked against
    seqmatch.actions.apply_backspaces on the raw action ids, with the prompt left out."""
    from seqmatch.actions import apply_backspaces

    tok = tokenizer()
    policy = seqmatch.model.build_model(seqmatch.ModelConfig(n_layer=1, n_head=2, d_model=16, d_ff=32,
                                                             max_position_embeddings=64), tok)
    bk = policy.bkspc_id
    with torch.no_grad():  # <bkspc> likely, so that rows do backspace
        policy.hf_model.get_output_embeddings().weight[bk] *= 0
        policy.hf_model.get_output_embeddings().bias = None
    policy.eval()
    policy.offset_head = None
    head = policy.hf_model.get_output_embeddings()
    head.register_forward_hook(lambda m, a, out: out + torch.nn.functional.one_hot(torch.tensor(bk), out.shape[-1]) * 2)
    prompts = ["1 2 3 Solution:", "4 Solution:"]
    out = seqmatch.generate(policy, tok, prompts, max_new_tokens=10, seed=0)
    assert any(bk in a for a in out.action_ids)
    for p, acts, text, fin in zip(prompts, out.action_ids, out.texts, out.finished):
        p_ids = tok(p, add_special_tokens=False).input_ids
        state = apply_backspaces(p_ids + acts, bk)
        if fin:
            state = state[:-1]  # the final <eos>
        n = 0
        while n < min(len(state), len(p_ids)) and state[n] == p_ids[n]:
            n += 1
        assert text == tok.decode(state[n:])
        assert ("<bkspc>" in out.actions[prompts.index(p)]) == (bk in acts)


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"train_dataset\[1\]: missing key 'answer'"):
        SequenceMatchTrainer(model=tiny_model("llama"), args=args(tmp_path), train_dataset=[{"question": "1",
                             "answer": "1"}, {"question": "2", "answr": "2"}], processing_class=tokenizer())
    with pytest.raises(ValueError, match=r"train_dataset\[0\]: expected a row with prompt/completion, "
                                         r"question/answer, text; got 'input'"):
        SequenceMatchTrainer(model=tiny_model("llama"), args=args(tmp_path), train_dataset=[{"input": "x"}],
                             processing_class=tokenizer())
    with pytest.raises(ValueError, match="processing_class: give the tokenizer"):
        SequenceMatchTrainer(model=tiny_model("llama"), args=args(tmp_path), train_dataset=copy_rows())
    with pytest.raises(ValueError, match="steps=5 and max_steps=6: steps is the old name of max_steps"):
        SequenceMatchConfig(output_dir="x", steps=5, max_steps=6)
    old = SequenceMatchConfig(out_dir="x", steps=5, lr=0.1, batch_size=8, grad_accum=2, log_every=3,
                              checkpoint_every=4)
    assert (old.output_dir, old.max_steps, old.learning_rate, old.per_device_train_batch_size,
            old.gradient_accumulation_steps, old.logging_steps, old.save_steps) == ("x", 5, 0.1, 8, 2, 3, 4)
    with pytest.raises(ValueError, match="report_to='wandb'"):
        SequenceMatchConfig(output_dir="x", report_to="wandb").validate()
    assert not (tmp_path / "checkpoint").exists()


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs_verbatim(tmp_path):
    """The README's "Python API" example: at most 15 lines, run as it is (offline) in a fresh
    directory; it trains, evaluates, saves and generates."""
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    (tmp_path / "example.py").write_text(code)
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = next(tmp_path.glob("*/model"))
    assert (out / "config.json").is_file() and (out / "README.md").is_file()
    summary = json.loads((out.parent / "summary.json").read_text())
    assert "eval_accuracy" in summary["eval"]
    assert list(out.parent.glob("runs/*/events.out.tfevents.*"))
