"""Overhead benchmark: what SequenceMatch costs on top of MLE (paper App. F, Tables 3-4).

    python -m seqmatch.bench [--json] [--d-model 256 --n-layer 4 --seq-len 256 --batch 8 ...]

Every number is a ratio of two sides run in the same process, on the same model, batch shape and
lengths, alternating the sides and taking medians:

* ``sm_over_mle_step_time_per_token``: forward + backward + AdamW step time per processed input
  for the SM objective (chi2_mix, half data rows with backspace noise, half replay rows with
  backspaces, mixed with BC at beta = 0.5) over the same for MLE on clean rows. Both go through
  ``SeqMatchLM`` with the 4-D masks of ``seqmatch.actions.collate``.
  ``sm_over_hf_causal_mle_step_time_per_token`` divides by plain transformers MLE instead
  (``labels=`` and its built-in causal mask, no offset head): the whole price of SM.
  ``hf_trainer_sm_over_sm_step_time_per_token``: the same SM step run by a ``transformers.Trainer``
  subclass (``compute_loss`` = the SM loss; its ``training_step``, then its optimizer) over the SM
  step of seqmatch's own loop (README, "Why not transformers.Trainer").
* ``bkspc_sampler_over_plain_throughput``: actions/s of ``seqmatch.sampling.generate`` with a
  model that emits ``<bkspc>`` at ``--bkspc-rate`` over ``transformers``' own ``generate``
  (sampling, KV cache, no backspace handling) for the same prompts and number of new tokens.
* ``transform_over_naive_throughput``: trajectories/s of ``actions_to_inputs`` + ``collate``
  (with dense 4-D masks) over a direct transliteration of the paper's Algorithm A loop, at
  ``--transform-len`` (1024 by default).
* peak memory of an SM step and an MLE step (CUDA: ``max_memory_allocated``; CPU: the peak
  resident-set growth during one step, in a fresh subprocess, Linux).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from seqmatch.actions import actions_to_inputs, collate, truncate_actions
from seqmatch.noise import add_backspace_noise

BOS, EOS, PAD, BKSPC = 0, 1, 2, 3


def build(args, device, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    from seqmatch.model import ModelConfig, SeqMatchLM

    torch.manual_seed(0)
    hf_cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.d_model, intermediate_size=4 * args.d_model,
                         num_hidden_layers=args.n_layer, num_attention_heads=args.n_head,
                         num_key_value_heads=args.n_head, max_position_embeddings=args.seq_len * 2 + 64,
                         bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    hf_cfg._attn_implementation = "sdpa"
    hf = LlamaForCausalLM(hf_cfg).to(device=device, dtype=dtype)
    mcfg = ModelConfig(arch="llama", n_layer=args.n_layer, n_head=args.n_head, d_model=args.d_model,
                       d_ff=4 * args.d_model, torch_dtype=str(dtype).split(".")[-1])
    model = SeqMatchLM(hf, mcfg, bkspc_id=BKSPC, bos_id=BOS, eos_id=EOS, pad_id=PAD,
                       max_positions=hf_cfg.max_position_embeddings).to(device=device, dtype=dtype)
    return model


def data_rows(args, rng, n):
    """Clean rows (MLE) and their noised versions (SM data rows), all exactly ``seq_len`` inputs."""
    clean, noised = [], []
    for _ in range(n):
        acts = list(rng.integers(4, args.vocab, size=args.seq_len - 1))
        clean.append(actions_to_inputs(acts, bos_id=BOS, bkspc_id=BKSPC))
        a, l = add_backspace_noise(acts, eta=args.eta, bkspc_id=BKSPC, noise_ids=list(range(4, args.vocab)), rng=rng)
        a, l, _ = truncate_actions(a, l, args.seq_len, EOS)
        noised.append(actions_to_inputs(a, labels=l, bos_id=BOS, bkspc_id=BKSPC, eos_id=EOS))
    return clean, noised


def model_rows(args, rng, n, prompt_len=16):
    """Replay rows: random actions with ``<bkspc>`` at ``bkspc_rate``, ending with ``<eos>``."""
    rows = []
    for _ in range(n):
        acts = [int(a) for a in rng.integers(4, args.vocab, size=args.seq_len - 1)]
        for i in range(prompt_len, len(acts) - 1):
            if rng.random() < args.bkspc_rate:
                acts[i] = BKSPC
        acts[-1] = EOS
        rows.append(actions_to_inputs(acts, bos_id=BOS, bkspc_id=BKSPC, eos_id=EOS, prompt_len=prompt_len))
    return rows


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_steps(args, model, device):
    """Closures for one MLE step, one SM step and one plain-HF MLE step; each returns tokens."""
    from seqmatch import losses

    rng = np.random.default_rng(0)
    B = args.batch
    clean, noised = data_rows(args, rng, B)
    replay = model_rows(args, rng, B - B // 2)
    mle_batch = collate(clean, pad_id=PAD).to(device)
    sm_batch = collate(noised[: B // 2] + replay, pad_id=PAD, is_model=[False] * (B // 2) + [True] * len(replay)).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    hf = model.hf_model
    ids = mle_batch.input_ids
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.dtype == "bf16-amp" else None

    def run(fn):
        with autocast if autocast is not None else _null():
            loss = fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def mle():
        run(lambda: losses.bc_loss(model(**mle_batch.model_inputs()).logits, mle_batch.labels))
        return int(mle_batch.state_mask.sum())

    def sm_loss(model, batch):
        logits = model(**batch.model_inputs()).logits
        # as seqmatch.train does it: the BC term shares the SM loss's logsumexp
        out = losses.sequence_match_loss_from_batch(logits, batch, alpha=0.01, gamma=0.998, divergence="chi2_mix")
        return 0.5 * out["bc"] + 0.5 * out["loss"]

    def sm():
        run(lambda: sm_loss(model, sm_batch))
        return int(sm_batch.state_mask.sum())

    def hf_mle():
        run(lambda: hf(input_ids=ids, labels=ids).loss)
        return int(ids.numel())

    hf_trainer = _hf_trainer_step(model, sm_batch, sm_loss)

    def alloc_optimizer_state():
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return {"mle": mle, "sm": sm, "hf_mle": hf_mle, "hf_trainer_sm": hf_trainer,
            "alloc_optimizer_state": alloc_optimizer_state}


def _hf_trainer_step(model, batch, loss_fn):
    """The same SM step through ``transformers.Trainer``: a subclass whose ``compute_loss`` is
    ``loss_fn``, its ``training_step`` (input preparation, autocast context, accelerate's backward)
    then its optimizer's step, as its inner loop runs them (no clipping, as the other sides)."""
    import tempfile

    from transformers import Trainer, TrainingArguments

    class SMTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return loss_fn(model, inputs["batch"])

    out_dir = tempfile.mkdtemp(prefix="seqmatch-bench-")
    dev = next(model.parameters()).device
    targs = TrainingArguments(output_dir=out_dir, report_to=[], learning_rate=1e-5, use_cpu=dev.type == "cpu",
                              disable_tqdm=True, save_strategy="no", optim="adamw_torch")  # our loop's AdamW
    trainer = SMTrainer(model=model, args=targs)
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # what its train() loop sets before each step

    def step():
        trainer.training_step(trainer.model, {"batch": batch})
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        return int(batch.state_mask.sum())

    return step


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def time_alternating(fns: dict, repeats: int, device, warmup: int = 2) -> dict:
    """Median seconds per token of each side, the sides interleaved round-robin."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    per_token = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            n = f()
            _sync(device)
            per_token[k].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in per_token.items()}


def sampler_ratio(args, model, device) -> dict:
    """Our backspace sampler vs transformers' generate, same prompts and number of new tokens."""
    from seqmatch.sampling import generate

    hf = model.hf_model
    head = hf.get_output_embeddings()
    # a realistic <bkspc> rate: a fixed logit bias, eos switched off so that every row runs to the end
    bias = torch.zeros(args.vocab, device=device)
    bias[BKSPC] = float(np.log(args.bkspc_rate / (1 - args.bkspc_rate) * (args.vocab - 4)))
    bias[EOS] = -1e4
    handle = head.register_forward_hook(lambda m, a, out: out + bias.to(out.dtype))
    rng = np.random.default_rng(1)
    prompts = [[int(t) for t in rng.integers(4, args.vocab, size=args.prompt_len)] for _ in range(args.gen_batch)]
    n_new = args.new_tokens
    stats = {"ours": [], "plain": []}
    bk_frac = []

    def ours():
        g = torch.Generator(device="cpu").manual_seed(0)
        out = generate(model, prompts, max_new_tokens=n_new, eos_id=EOS, bkspc_id=BKSPC, bos_id=BOS, generator=g)
        acts = sum(len(a) for a in out.actions)
        bk_frac.append(sum(a.count(BKSPC) for a in out.actions) / max(acts, 1))
        return acts

    x = torch.tensor([[BOS] + p for p in prompts], device=device)

    def plain():
        with torch.no_grad():
            out = hf.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=True, top_k=0, top_p=1.0,
                              temperature=1.0, max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=PAD,
                              eos_token_id=EOS)
        return int((out.shape[1] - x.shape[1]) * out.shape[0])

    try:
        model.eval()
        for _ in range(1):
            ours(), plain()
        for _ in range(args.sampler_repeats):
            for name, f in (("ours", ours), ("plain", plain)):
                _sync(device)
                t0 = time.perf_counter()
                n = f()
                _sync(device)
                stats[name].append(n / (time.perf_counter() - t0))
    finally:
        handle.remove()
        model.train()
    o, p = statistics.median(stats["ours"]), statistics.median(stats["plain"])
    return {"bkspc_sampler_over_plain_throughput": o / p, "sampler_actions_per_s": o, "plain_actions_per_s": p,
            "sampler_bkspc_fraction": statistics.fmean(bk_frac)}


def naive_algorithm_a(actions, bos_id=BOS, bkspc_id=BKSPC):
    """The paper's Algorithm A (App. A) transliterated: dense mask rows copied step by step."""
    a = [bos_id] + list(actions)
    L = len(a)
    m = torch.zeros(L, L, dtype=torch.bool)
    x = list(a)
    p = [0] * L
    y = list(a[1:]) + [-100]
    c = d = 0
    for i in range(L):
        m[i] = m[max(i - 1, 0)]
        if a[i] == bkspc_id:
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
            nz = torch.nonzero(m[i, c + 1:]).flatten()
            c = int(nz[0]) + c + 1 if len(nz) else 0
            p[i] = p[d - 1] + 1
        if i == 0:
            c, d = 0, 0
        if i == 1:
            c, d = 0, 1
    return torch.tensor(x), torch.tensor(p), torch.tensor(y), m


def transform_ratio(args) -> dict:
    rng = np.random.default_rng(2)
    L, n = args.transform_len, args.transform_batch
    seqs = []
    for _ in range(n):
        acts = [int(t) for t in rng.integers(4, args.vocab, size=L - 1)]
        for i in range(1, len(acts)):
            if rng.random() < args.bkspc_rate:
                acts[i] = BKSPC
        seqs.append(acts)

    def ours():
        collate([actions_to_inputs(s, bos_id=BOS, bkspc_id=BKSPC) for s in seqs], pad_id=PAD)

    def naive():
        rows = [naive_algorithm_a(s) for s in seqs]
        torch.stack([r[3] for r in rows])

    t = {"ours": [], "naive": []}
    for _ in range(args.transform_repeats):
        for name, f in (("ours", ours), ("naive", naive)):
            t0 = time.perf_counter()
            f()
            t[name].append(n / (time.perf_counter() - t0))
    o, nv = statistics.median(t["ours"]), statistics.median(t["naive"])
    return {"transform_over_naive_throughput": o / nv, "transform_traj_per_s": o, "naive_traj_per_s": nv}


def peak_memory(args, device) -> dict:
    if device.type == "cuda":
        out = {}
        model = build(args, device, _dtype(args))
        steps = make_steps(args, model, device)
        steps["alloc_optimizer_state"]()
        for k in ("mle", "sm"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            steps[k]()
            torch.cuda.synchronize()
            out[f"{k}_step_peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        out["sm_over_mle_peak_memory"] = out["sm_step_peak_mb"] / out["mle_step_peak_mb"]
        return out
    out = {}
    for k in ("mle", "sm"):
        cmd = [sys.executable, "-m", "seqmatch.bench", "--memory-probe", k] + _size_argv(args)
        res = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
        out[f"{k}_step_peak_mb"] = float(res.stdout.strip().splitlines()[-1])
    out["sm_over_mle_peak_memory"] = out["sm_step_peak_mb"] / out["mle_step_peak_mb"]
    return out


def _memory_probe(args, which: str) -> None:
    device = torch.device("cpu")
    model = build(args, device, torch.float32)
    steps = make_steps(args, model, device)
    steps["alloc_optimizer_state"]()  # AdamW state exists before the baseline is read
    before = _rss_kib("VmRSS")
    _reset_peak_rss()  # so that the peak of model building does not hide the step's
    steps[which]()
    print((_rss_kib("VmHWM") - before) / 1024)


def _reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:  # Linux >= 4.0: "5" resets VmHWM to VmRSS
        f.write("5")


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _size_argv(args):
    return ["--vocab", str(args.vocab), "--d-model", str(args.d_model), "--n-layer", str(args.n_layer),
            "--n-head", str(args.n_head), "--seq-len", str(args.seq_len), "--batch", str(args.batch),
            "--eta", str(args.eta), "--bkspc-rate", str(args.bkspc_rate)]


def _dtype(args):
    return torch.bfloat16 if args.dtype == "bf16" else torch.float32


def parser():
    p = argparse.ArgumentParser(prog="python -m seqmatch.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument("--out", default=None, help="also write that object, with each target and whether it "
                   "was met, to this JSON file (written whole or not at all)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, choices=["fp32", "bf16", "bf16-amp"],
                   help="weights dtype (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--gpu-size", action="store_true",
                   help="the Table 3 shape on a GPU: ~1B-parameter Llama (d 2048, 16 layers), L = 1024")
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256, help="inputs per training row")
    p.add_argument("--batch", type=int, default=8, help="rows per training step (SM: half data, half replay)")
    p.add_argument("--eta", type=float, default=0.05, help="noise rate of SM data rows")
    p.add_argument("--bkspc-rate", type=float, default=0.05, help="<bkspc> rate of replay rows and of the sampler")
    p.add_argument("--repeats", type=int, default=7, help="timed training steps per side")
    p.add_argument("--gen-batch", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--sampler-repeats", type=int, default=3)
    p.add_argument("--transform-len", type=int, default=1024)
    p.add_argument("--transform-batch", type=int, default=4)
    p.add_argument("--transform-repeats", type=int, default=3)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-probe", choices=["mle", "sm"], help=argparse.SUPPRESS)
    return p


# what the ratios must reach on the CPU default (README "Speed")
TARGETS = {"sm_over_mle_step_time_per_token": ("<=", 1.15), "bkspc_sampler_over_plain_throughput": (">=", 0.9),
           "transform_over_naive_throughput": (">=", 10.0)}


def target_met(key: str, value: float) -> bool | None:
    """Whether ``value`` of ratio ``key`` meets its target (None: the ratio has none)."""
    if key not in TARGETS:
        return None
    op, bound = TARGETS[key]
    return value <= bound if op == "<=" else value >= bound


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.memory_probe:
        _memory_probe(args, args.memory_probe)
        return 0
    device = torch.device(args.device)
    if args.dtype is None:
        args.dtype = "bf16" if device.type == "cuda" else "fp32"
    if args.gpu_size:
        args.vocab, args.d_model, args.n_layer, args.n_head, args.seq_len = 32000, 2048, 16, 16, 1024
    model = build(args, device, _dtype(args))
    n_params = sum(p.numel() for p in model.parameters())
    res = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else
           f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
           "dtype": args.dtype, "params_m": n_params / 1e6, "seq_len": args.seq_len, "batch": args.batch}
    steps = make_steps(args, model, device)
    t = time_alternating({k: steps[k] for k in ("mle", "sm", "hf_mle", "hf_trainer_sm")}, args.repeats, device)
    res.update(sm_over_mle_step_time_per_token=t["sm"] / t["mle"],
               sm_over_hf_causal_mle_step_time_per_token=t["sm"] / t["hf_mle"],
               hf_trainer_sm_over_sm_step_time_per_token=t["hf_trainer_sm"] / t["sm"],
               mle_us_per_token=t["mle"] * 1e6, sm_us_per_token=t["sm"] * 1e6, hf_mle_us_per_token=t["hf_mle"] * 1e6,
               hf_trainer_sm_us_per_token=t["hf_trainer_sm"] * 1e6)
    res.update(sampler_ratio(args, model, device))
    res.update(transform_ratio(args))
    if not args.skip_memory:
        del model
        res.update(peak_memory(args, device))
    print(f"seqmatch.bench on {res['device']}, {res['dtype']}, {res['params_m']:.1f}M params, "
          f"L={args.seq_len}, batch={args.batch}")
    for k, v in res.items():
        if isinstance(v, float):
            met = target_met(k, v)
            mark = "" if met is None else f"  (target {TARGETS[k][0]} {TARGETS[k][1]}: {'met' if met else 'MISSED'})"
            print(f"  {k:45s} {v:10.4g}{mark}")
    if args.json:
        print(json.dumps(res))
    if args.out:
        from seqmatch.io import write_json

        write_json(args.out, {**res, "targets": {k: {"op": op, "bound": b, "met": target_met(k, res[k])}
                                                 for k, (op, b) in TARGETS.items() if k in res}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
