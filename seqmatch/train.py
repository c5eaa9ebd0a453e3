"""The training loop: MLE, BC ("MLE + <bkspc>"), SequenceMatch and unlikelihood (paper Alg. 1, App. E).

    python -m seqmatch.train --config RUN/run_config.json           # what the workflow runs
    python -m seqmatch.train --out-dir DIR --train-file train.jsonl --tokenizer TOKDIR --method sm \
        [--alpha 0.01 --gamma 0.998 --eta 0.001 ...]      # every TrainConfig / ModelConfig field

* ``mle``: cross-entropy on clean data. ``ulk``: MLE plus the unlikelihood token loss.
* ``bc``: cross-entropy on noised data (noise token, then a ``<bkspc>`` label; §4.2).
* ``sm``: BC alone for ``bc_warmup_steps``; then ``beta * L_BC + (1 - beta) * L_SM`` with beta
  annealed linearly 1 -> ``beta_final`` over ``beta_anneal_steps``; both terms per token (L_SM is
  −J over the data rows' mean action count, ``seqmatch.losses.sequence_match_loss``). Rollouts of
  the current policy enter a FIFO replay buffer every ``sampling_interval`` steps; each step's
  batch holds data rows and replay rows, transformed by the same Algorithm A and run in one
  forward pass.

Runs under accelerate (``accelerate launch -m seqmatch.train ...`` for several GPUs). Checkpoints
are written atomically every ``checkpoint_every`` steps and on SIGTERM; re-running the same command
resumes from ``DIR/checkpoint`` and, on CPU, ends bit-identical to an uninterrupted run (the
files and their checks: ``seqmatch.checkpoint``).
Outputs: ``DIR/model/`` (``seqmatch.model.load_model``), ``DIR/train_log.jsonl`` and, last,
``DIR/summary.json``; a BC run also writes ``DIR/bc_warmup/`` at step ``bc_warmup_steps``. With
``--stop-after-warmup true`` a BC run stops there instead: ``DIR/bc_warmup/``, ``DIR/checkpoint/``
(the same command without the flag resumes from it) and ``DIR/bc_warmup.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqmatch import checkpoint, distributed
from seqmatch.io import atomic_write_text
from seqmatch.actions import actions_to_inputs, collate, truncate_actions
from seqmatch.noise import add_backspace_noise, digit_noise_ids, random_noise_ids, require_bases
from seqmatch.options import config_field as _field
from seqmatch.runs import DIVERGENCES, METHODS, WARMUP_DONE  # names in one place (the workflow's too)
from seqmatch.runs import INITIAL_VALUE_ESTIMATORS
from seqmatch.runs import NOISES as NOISE_TYPES


@dataclass
class TrainConfig:
    """Everything a training run needs besides the model architecture (see ``ModelConfig``)."""

    method: str = _field("mle", "mle | bc | sm | ulk")
    train_file: str = _field("", 'JSONL rows with "prompt" and "completion" (seqmatch.data output)')
    tokenizer: str = _field("", "tokenizer directory (or hub name, paper profile)")
    out_dir: str = _field("", "run directory: checkpoint/, model/, train_log.jsonl, summary.json")
    seed: int = _field(0, "seed of the data order, noise, rollouts and initialisation")
    # optimisation
    steps: int = _field(1000, "optimizer steps")
    batch_size: int = _field(32, "data rows per optimizer step and process (paper: 32)")
    grad_accum: int = _field(1, "micro-batches per optimizer step; batch_size must divide evenly")
    lr: float = _field(3e-4, "peak learning rate")
    weight_decay: float = _field(0.0, "AdamW weight decay")
    warmup_steps: int = _field(2000, "linear warm-up, then cosine decay (paper: 2,000)")
    max_grad_norm: float = _field(1.0, "gradient clipping (0 disables)")
    mixed_precision: str = _field("no", "accelerate: no | bf16 | fp16")
    num_processes: int = _field(
        0, "processes this run trains on (accelerate launch; the workflow's run configs carry it when > 1): a "
        "launch of another size is refused; 0: whatever the launch gives")
    # data and noise (§4.2)
    max_len: int = _field(1024, "inputs per trajectory incl. <bos>; longer ones follow the over-length rule")
    mask_prompt: bool = _field(
        False, "prompt actions out of BC/MLE; the SM sums start after the prompt (arithmetic: true)")
    noise: str = _field("random", "none | random | ground_truth (digits 0..b-1 of the row's base)")
    eta: float = _field(0.001, "probability of a noise token + <bkspc> per position (bc, sm)")
    # SequenceMatch objective (eq. 4)
    alpha: float = _field(0.01, "entropy-regularisation strength")
    gamma: float = _field(0.998, "discount")
    divergence: str = _field("chi2_mix", "chi2 | chi2_mix | kl | js")
    logit_bound: float = _field(50.0, "|logit| bound for the SM objective (App. C.6); 0 disables")
    initial_value: str = _field(
        "data", "estimator of the model rows' value term -1/2 E_rho0[V(s0)]: data (take it at the data rows' "
        "initial states: the +-1/2 V(s0) of data and model rows cancel in every batch) | plugin (eq. 4 row by "
        "row: they cancel only on average over prompts); seqmatch.losses.sequence_match_loss")
    bc_warmup_steps: int = _field(1000, "BC-only steps before SM (paper: text 1,000, arithmetic 10,000)")
    warm_start: str = _field(
        "", "sm: a BC run directory (same seed, noise, eta, data, model and schedule) to start from, at its "
        "bc_warmup/ snapshot: an SM run's first bc_warmup_steps are exactly that BC run's first steps "
        "(bit-identical on CPU), so they are not trained twice. BC runs write the snapshot at step "
        "bc_warmup_steps whenever 0 < bc_warmup_steps < steps. Empty: train the warm-up here")
    stop_after_warmup: bool = _field(
        False, "bc: stop once the bc_warmup/ snapshot is written, with a checkpoint there (the workflow's "
        "bc_warmup job: SM runs start from the snapshot while the BC run resumes from the checkpoint)")
    beta_final: float = _field(0.2, "final weight of L_BC in beta * L_BC + (1 - beta) * L_SM")
    beta_anneal_steps: int = _field(2000, "beta goes 1 -> beta_final linearly over these steps")
    # replay buffer and rollouts (App. E)
    replay_capacity: int = _field(1000, "FIFO capacity (sequences)")
    replay_reuse: float = _field(8.0, "times each sequence is used in training, on average")
    gen_batch_size: int = _field(32, "rollouts generated per sampling round")
    model_rows: int = _field(0, "replay rows per optimizer step; 0 = same as batch_size")
    max_prompt_len: int = _field(256, "text rollouts: prompt length uniform in 1..max_prompt_len")
    max_new_tokens: int = _field(512, "rollout length limit (actions)")
    temperature: float = _field(1.0, "rollout sampling temperature")
    top_p: float = _field(1.0, "rollout nucleus-sampling mass (1: off)")
    # unlikelihood (ulk)
    ul_weight: float = _field(1.0, "weight of the unlikelihood term added to MLE")
    # bookkeeping
    checkpoint_every: int = _field(100, "steps between checkpoints (0: only at the end / on SIGTERM)")
    max_nonfinite: int = _field(10, "skipped non-finite losses tolerated before aborting")
    log_every: int = _field(1, "steps between log lines")
    grad_diagnostics_every: int = _field(
        0, "SM steps between gradient diagnostics in the log: the norm of the gradient of each loss part (BC, "
        "SM, chi2_mix regulariser, the plug-in residue) and its cosine with the BC gradient; one extra forward "
        "and four backward passes each (single process only); 0 disables")

    def validate(self) -> None:
        """One place for every check; raises ValueError naming the field."""

        def bad(name, expected):
            raise ValueError(f"train config: {name}={getattr(self, name)!r}: expected {expected}")

        if self.method not in METHODS:
            bad("method", f"one of {METHODS}")
        if self.stop_after_warmup and not (self.method == "bc" and 0 < self.bc_warmup_steps < self.steps):
            bad("stop_after_warmup", "false unless method is bc and 0 < bc_warmup_steps < steps")
        if self.noise not in NOISE_TYPES:
            bad("noise", f"one of {NOISE_TYPES}")
        if self.divergence not in DIVERGENCES:
            bad("divergence", f"one of {DIVERGENCES}")
        if self.initial_value not in INITIAL_VALUE_ESTIMATORS:
            bad("initial_value", f"one of {INITIAL_VALUE_ESTIMATORS}")
        if not 0.0 < self.gamma < 1.0:
            bad("gamma", "0 < gamma < 1")
        if not 0.0 <= self.eta <= 1.0:
            bad("eta", "0 <= eta <= 1")
        if self.alpha <= 0:
            bad("alpha", "alpha > 0")
        if not 0.0 <= self.beta_final <= 1.0:
            bad("beta_final", "0 <= beta_final <= 1")
        for name in ("steps", "batch_size", "grad_accum", "max_len", "replay_capacity", "gen_batch_size",
                     "max_prompt_len", "max_new_tokens"):
            if getattr(self, name) < 1:
                bad(name, "an integer >= 1")
        for name in ("warmup_steps", "bc_warmup_steps", "beta_anneal_steps", "model_rows", "grad_diagnostics_every",
                     "checkpoint_every", "max_nonfinite", "max_grad_norm", "weight_decay", "logit_bound",
                     "num_processes"):
            if getattr(self, name) < 0:
                bad(name, ">= 0")
        if self.batch_size % self.grad_accum:
            bad("batch_size", f"a multiple of grad_accum={self.grad_accum}")
        if self.replay_reuse <= 0:
            bad("replay_reuse", "> 0")
        if self.temperature <= 0:
            bad("temperature", "> 0")
        if not 0.0 < self.top_p <= 1.0:
            bad("top_p", "0 < top_p <= 1")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            bad("mixed_precision", "no | bf16 | fp16")
        if self.method in ("bc", "sm") and self.noise == "none" and self.eta > 0:
            bad("noise", "random or ground_truth when eta > 0 (bc/sm need a noise type)")
        if not self.train_file or not Path(self.train_file).is_file():
            bad("train_file", "an existing JSONL file")
        if not self.out_dir:
            bad("out_dir", "a directory path")


# --------------------------------------------------------------------------------------- data

def load_rows(path: str) -> list[dict]:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "completion" not in row:
                raise ValueError(f"{path}:{n}: row has no 'completion' field (expected seqmatch.data output)")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


@dataclass
class Example:
    prompt: list[int]
    completion: list[int]  # ends with <eos>
    base: int = 10


def encode_rows(rows: list[dict], tokenizer) -> list[Example]:
    def enc(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    eos = tokenizer.eos_token_id
    return [Example(enc(r.get("prompt", "")), enc(r["completion"]) + [eos], int(r.get("base", 10) or 10))
            for r in rows]


# ------------------------------------------------------------------------------------ trainer

class NonFiniteLossError(RuntimeError):
    pass


class Trainer:
    """Thin loop around the pure losses of ``seqmatch.losses``."""

    def __init__(self, cfg: TrainConfig, model_cfg):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        from seqmatch import losses
        from seqmatch.data import load_tokenizer
        from seqmatch.model import build_model
        from seqmatch.replay import ReplayBuffer, sampling_interval

        cfg.validate()
        self.cfg, self.model_cfg, self.losses = cfg, model_cfg, losses
        self.out = Path(cfg.out_dir)
        self.accel = Accelerator(mixed_precision=cfg.mixed_precision,
                                 gradient_accumulation_steps=cfg.grad_accum)
        distributed.check_world_size(self.accel, cfg.num_processes)  # before anything is read or written
        set_seed(cfg.seed)
        self.tokenizer = load_tokenizer(cfg.tokenizer)
        self.model = build_model(model_cfg, self.tokenizer)
        rows = load_rows(cfg.train_file)
        if cfg.noise == "ground_truth" and cfg.eta > 0:
            require_bases(rows, cfg.train_file)
        self.out.mkdir(parents=True, exist_ok=True)  # after the checks of the tokenizer, model and rows
        self.bos, self.eos = self.model.bos_id, self.model.eos_id
        self.bkspc, self.pad = self.model.bkspc_id, self.model.pad_id
        self.examples = encode_rows(rows, self.tokenizer)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = losses.make_lr_scheduler(self.optimizer, warmup_steps=cfg.warmup_steps,
                                                  total_steps=cfg.steps)
        # the scheduler stays unwrapped: one schedule step per optimizer step, whatever the process count
        self.model, self.optimizer = self.accel.prepare(self.model, self.optimizer)
        # data order, noise, rollout prompts, sampling: one stream per process, or every GPU would
        # train on (and sample) the same rows; process 0 keeps the single-process streams
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        if self.accel.process_index > 0:
            self._own_streams()
        self.special = {self.bos, self.eos, self.bkspc, self.pad}
        self.vocab_noise = random_noise_ids(len(self.tokenizer), self.special)
        self.model_rows = cfg.model_rows or cfg.batch_size
        self.interval = sampling_interval(capacity=cfg.replay_capacity, reuse=cfg.replay_reuse,
                                          gen_batch_size=cfg.gen_batch_size,
                                          model_rows_per_step=self.model_rows)
        self.buffer = ReplayBuffer(cfg.replay_capacity)
        self.step = 0
        self.nonfinite = 0
        self.grad_times: list[float] = []
        self.sample_times: list[float] = []
        self.last_sample_step = None
        self.rollout_stats: dict = {}  # of the latest sampling round, in every log line after it
        self._stop = False

    # ---- trajectories
    def data_trajectory(self, ex: Example, noised: bool):
        cfg = self.cfg
        actions = ex.prompt + ex.completion
        labels = None
        if noised and cfg.eta > 0:
            ids = digit_noise_ids(self.tokenizer.convert_tokens_to_ids, ex.base) \
                if cfg.noise == "ground_truth" else self.vocab_noise
            actions, labels = add_backspace_noise(actions, eta=cfg.eta, bkspc_id=self.bkspc, noise_ids=ids,
                                                  rng=self.rng, start=len(ex.prompt))
        actions, labels, _ = truncate_actions(actions, labels, cfg.max_len, self.eos)
        return actions_to_inputs(actions, labels=labels, bos_id=self.bos, bkspc_id=self.bkspc,
                                 eos_id=self.eos, prompt_len=min(len(ex.prompt), len(actions)))

    def draw_examples(self, n: int) -> list[Example]:
        idx = self.rng.integers(0, len(self.examples), size=n)
        return [self.examples[i] for i in idx]

    def rollout_prompts(self, n: int) -> tuple[list[Example], list[list[int]]]:
        """Prompts from training data (App. E): the question for prompted rows, else a random
        prefix of length 1..max_prompt_len; with the examples they come from."""
        examples, prompts = self.draw_examples(n), []
        for ex in examples:
            if ex.prompt:
                prompts.append(ex.prompt[: self.cfg.max_prompt_len])
            else:
                k = int(self.rng.integers(1, min(self.cfg.max_prompt_len, len(ex.completion) - 1) + 1))
                prompts.append(ex.completion[:k])
        return examples, prompts

    def fill_buffer(self):
        from seqmatch.sampling import generate

        cfg = self.cfg
        t0 = time.perf_counter()
        examples, prompts = self.rollout_prompts(cfg.gen_batch_size)
        model = self.accel.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            out = generate(model, prompts, max_new_tokens=cfg.max_new_tokens, eos_id=self.eos,
                           bkspc_id=self.bkspc, bos_id=self.bos, temperature=cfg.temperature,
                           top_p=cfg.top_p, generator=self.gen,
                           suppress_ids=tuple(i for i in (self.bos, self.pad) if i != self.eos))  # eos may be both
        model.train(was_training)
        items = [dict(actions=[int(a) for a in p + list(acts)], prompt_len=len(p), terminal=bool(fin))
                 for p, acts, fin in zip(prompts, out.actions, out.finished)]
        self.buffer.add(items)
        self.sample_times.append(time.perf_counter() - t0)
        self.last_sample_step = self.step
        self.rollout_stats = rollout_stats(examples, prompts, out, self.bkspc)

    def model_trajectory(self, item: dict):
        actions, labels, cut = truncate_actions(item["actions"], None, self.cfg.max_len, self.eos)
        return actions_to_inputs(actions, labels=labels, bos_id=self.bos, bkspc_id=self.bkspc, eos_id=self.eos,
                                 prompt_len=min(item["prompt_len"], len(actions)),
                                 terminal=item["terminal"] or cut)

    # ---- one step
    def beta(self) -> float:
        return self.beta_at(self.step)

    def beta_at(self, step: int) -> float:
        cfg = self.cfg
        if cfg.method != "sm":
            return 1.0
        return self.losses.beta_at(step, bc_warmup_steps=cfg.bc_warmup_steps,
                                   beta_anneal_steps=cfg.beta_anneal_steps, beta_final=cfg.beta_final)

    def compute_loss(self, batch, beta: float) -> dict:
        """Loss dict for one micro-batch (``loss`` is what is minimised)."""
        cfg, L = self.cfg, self.losses
        logits = self.model(**batch.model_inputs()).logits.float()
        if cfg.method == "sm" and beta < 1.0:
            # one logsumexp serves both terms (the BC cross-entropy comes with the SM dict)
            sm = L.sequence_match_loss_from_batch(logits, batch, **self.sm_kwargs())
            ce = sm.pop("bc")
            out = {"ce": ce, **{f"sm_{k}": v for k, v in sm.items()}}
            out["loss"] = beta * ce + (1.0 - beta) * sm["loss"]
            return out
        data = ~batch.is_model
        ce = L.bc_loss(logits[data], batch.labels[data], prompt_len=batch.prompt_len[data],
                       mask_prompt=cfg.mask_prompt)
        out = {"ce": ce}
        if cfg.method == "ulk":
            ul = L.unlikelihood_loss(logits, batch.labels, batch.input_ids, state_mask=batch.state_mask)
            out.update(loss=ce + cfg.ul_weight * ul, unlikelihood=ul)
        else:
            out["loss"] = ce
        return out

    def sm_kwargs(self, **over) -> dict:
        cfg = self.cfg
        kw = dict(alpha=cfg.alpha, gamma=cfg.gamma, divergence=cfg.divergence, logit_bound=cfg.logit_bound or None,
                  mask_prompt=cfg.mask_prompt, initial_value=cfg.initial_value)
        return {**kw, **over}

    def gradient_diagnostics(self, batch, beta: float) -> dict:
        """The SM step's gradient split into its parts, for the log: the norm of the gradient of
        the BC loss, of L_SM, of the chi2_mix regulariser's share of L_SM, and of the residue
        ½(mean V(s₀) − mean V(u₀))/n̄ that the plug-in estimator would add (``initial_value``),
        each with its cosine to the BC gradient, and the norm and BC cosine of the step's
        β L_BC + (1 − β) L_SM. One extra forward pass, no effect on training (no RNG is used)."""
        cfg, L = self.cfg, self.losses
        params = [p for p in self.model.parameters() if p.requires_grad]
        logits = self.model(**batch.model_inputs()).logits.float()
        sm = L.sequence_match_loss_from_batch(logits, batch, **self.sm_kwargs())
        n_bar = sm["tokens_per_row"]
        parts = {"bc": sm["bc"], "sm": sm["loss"],
                 "residue": -L.initial_value_residue(logits, batch, mask_prompt=cfg.mask_prompt,
                                                     logit_bound=cfg.logit_bound or None) / n_bar}
        if cfg.divergence == "chi2_mix":  # L_SM minus L_SM without the regulariser
            no_reg = L.sequence_match_loss_from_batch(logits, batch, **self.sm_kwargs(divergence="chi2"))
            parts["regularizer"] = sm["loss"] - no_reg["loss"]
        grads = {}
        names = list(parts)
        for i, name in enumerate(names):
            g = torch.autograd.grad(parts[name], params, retain_graph=i < len(names) - 1, allow_unused=True)
            grads[name] = torch.cat([(x if x is not None else torch.zeros_like(p)).flatten()
                                     for x, p in zip(g, params)])
        grads["step"] = beta * grads["bc"] + (1.0 - beta) * grads["sm"]
        bc = grads["bc"]
        rec = {}
        for name, g in grads.items():
            rec[f"gnorm_{name}"] = float(g.norm())
            if name != "bc":
                rec[f"gcos_{name}_bc"] = float(torch.nn.functional.cosine_similarity(g, bc, dim=0, eps=1e-12))
        return rec

    def make_batch(self, n_data: int, n_model: int, noised: bool):
        """``n_data`` training rows (noised for BC/SM) and ``n_model`` replayed rollouts, one batch."""
        trajs = [self.data_trajectory(ex, noised) for ex in self.draw_examples(n_data)]
        is_model = [False] * len(trajs)
        if n_model:
            trajs += [self.model_trajectory(it) for it in self.buffer.sample(n_model, self.rng)]
            is_model += [True] * n_model
        attn = getattr(self.model_cfg, "attn_implementation", "sdpa")
        return collate(trajs, pad_id=self.pad, attn_implementation=attn, is_model=is_model,
                       dtype=torch.float32).to(self.accel.device)

    def train_step(self) -> dict:
        cfg = self.cfg
        beta = self.beta()
        use_model_rows = cfg.method == "sm" and beta < 1.0
        if use_model_rows and (self.last_sample_step is None or self.step - self.last_sample_step >= self.interval):
            self.fill_buffer()
        noised = cfg.method in ("bc", "sm")
        micro = cfg.batch_size // cfg.grad_accum
        n_model = self.model_rows // cfg.grad_accum if use_model_rows else 0
        t0 = time.perf_counter()
        logs, tokens, skipped = [], 0, False
        diag = {}
        want_diag = (use_model_rows and cfg.grad_diagnostics_every and self.accel.num_processes == 1
                     and self.step % cfg.grad_diagnostics_every == 0)
        self.optimizer.zero_grad(set_to_none=True)
        for m in range(cfg.grad_accum):
            batch = self.make_batch(micro, n_model, noised)
            tokens += int(batch.state_mask.sum())
            if want_diag and m == 0:  # its own RNG state: dropout there must not move training's streams
                dev = self.accel.device
                with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                    diag = self.gradient_diagnostics(batch, beta)
            # DDP syncs gradients on the last micro-batch only; accelerate's backward divides the
            # loss by grad_accum, so the step's gradient is the mean over micro-batches
            sync = contextlib.nullcontext() if m == cfg.grad_accum - 1 else self.accel.no_sync(self.model)
            with sync:
                out = self.compute_loss(batch, beta)
                finite = torch.isfinite(out["loss"].detach()).all().float().reshape(1)
                if self.accel.reduce(finite, reduction="sum").item() < self.accel.num_processes:
                    skipped = True  # every process skips together (no process waits in all-reduce)
                    break
                self.accel.backward(out["loss"])
            logs.append({k: float(v.detach()) for k, v in out.items()})
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite += 1
            msg = f"non-finite loss at step {self.step} (skipped; {self.nonfinite} so far)"
            print(msg, file=sys.stderr)
            if self.nonfinite > cfg.max_nonfinite:
                raise NonFiniteLossError(f"{msg}: more than max_nonfinite={cfg.max_nonfinite}, aborting")
        else:
            # the norm before clipping (max_norm inf: measured, nothing scaled) and the factor applied
            max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
            norm = float(self.accel.clip_grad_norm_(self.model.parameters(), max_norm))
            diag.update(grad_norm=norm, clip_factor=min(1.0, max_norm / (norm + 1e-6)))
            self.optimizer.step()
        self.scheduler.step()  # the schedule follows steps taken, skipped or not
        dt = time.perf_counter() - t0
        self.grad_times.append(dt)
        rec = {k: statistics.fmean(d[k] for d in logs) for k in logs[0]} if logs else {}
        rec.update(step=self.step, lr=self.scheduler.get_last_lr()[0], beta=beta, tokens=tokens,
                   tokens_per_s=tokens / max(dt, 1e-9), buffer_size=len(self.buffer), grad_time=dt,
                   sample_time=self.sample_times[-1] if self.last_sample_step == self.step else 0.0,
                   skipped=skipped, **diag)
        if use_model_rows:
            rec.update(self.rollout_stats)
        self.step += 1
        return rec

    # ---- checkpoints (seqmatch.checkpoint: the files, their identity checks, the RNG streams)
    def identity(self) -> dict:
        """What makes two runs the same run (``seqmatch.checkpoint.identity``)."""
        return checkpoint.identity(self.cfg, self.model_cfg, self.accel.num_processes)

    def trainable_state(self) -> dict:
        return checkpoint.trainable_state(self.accel.unwrap_model(self.model))

    def save_checkpoint(self, name: str = checkpoint.CHECKPOINT):
        # every process's own streams and replay buffer (None with one process), then one writer per
        # run directory (the processes hold the same weights)
        ranks = distributed.gather(self.accel, checkpoint.capture_process(self.rng, self.gen, self.buffer.state_dict())
                                   if self.accel.process_index > 0 else None)
        if not self.accel.is_main_process:
            return
        progress = {"step": self.step, "nonfinite": self.nonfinite, "last_sample_step": self.last_sample_step,
                    "grad_times": self.grad_times, "sample_times": self.sample_times,
                    "buffer": self.buffer.state_dict()}
        checkpoint.save(self.out / name, model=self.accel.unwrap_model(self.model), optimizer=self.optimizer,
                        scheduler=self.scheduler, rng=self.rng, gen=self.gen, progress=progress,
                        identity=self.identity(), ranks=ranks[1:] if ranks else None)

    def load_checkpoint(self) -> bool:
        final = self.out / checkpoint.CHECKPOINT
        main = self.accel.is_main_process  # one process moves and deletes files; the others wait
        if main:
            checkpoint.recover(final)
        self.accel.wait_for_everyone()
        state = checkpoint.read_state(final)
        if state is None:
            return False
        stale = checkpoint.stale(state, self.identity())
        if stale:  # a different run wrote it (e.g. the config changed): start this one afresh
            if main:
                print(f"{final}: checkpoint of a different run ({'; '.join(stale[:5])}); starting from step 0",
                      file=sys.stderr)
            self.accel.wait_for_everyone()  # every process has read it before it goes
            if main:
                checkpoint.remove(final)
            return False
        self._restore(final, state)
        return True

    def _own_streams(self, *salt: int):
        """Data/noise and sampling streams of a process > 0, from (seed, rank, *salt)."""
        key = [self.cfg.seed, self.accel.process_index, *salt]
        self.rng = np.random.default_rng(key)
        self.gen.manual_seed(int(np.random.SeedSequence(key + [1]).generate_state(1)[0]))

    def _restore(self, final: Path, state: dict):
        """Everything a checkpoint holds: weights, optimizer, schedule, RNG streams, replay buffer."""
        rank = self.accel.process_index  # each process resumes its own streams and replay buffer
        buffer = checkpoint.restore(final, state, model=self.accel.unwrap_model(self.model),
                                    optimizer=self.optimizer, scheduler=self.scheduler, rng=self.rng,
                                    gen=self.gen, rank=rank)
        self.step, self.nonfinite = state["step"], state["nonfinite"]
        if buffer is None:  # a checkpoint of an older seqmatch holds process 0's alone: fresh streams
            print(f"warning: {final} lacks process {rank}'s RNG streams (an older seqmatch wrote it): it "
                  f"continues on fresh ones (not bit-identical to an uninterrupted run)", file=sys.stderr)
            self._own_streams(self.step)
            buffer = state["buffer"]
        self.last_sample_step = state["last_sample_step"]
        self.grad_times, self.sample_times = state["grad_times"], state["sample_times"]
        self.buffer.load_state_dict(buffer)

    def warm_start(self, log_path: Path):
        """Start an SM run from a BC run's bc_warmup/ snapshot (TrainConfig.warm_start): its state
        and its log lines of the warm-up steps, after checking that run trained what this one would."""
        src = Path(self.cfg.warm_start)
        snap = src / checkpoint.BC_WARMUP
        state = checkpoint.read_state(snap)
        if state is None:  # e.g. a BC run with bc_warmup_steps >= steps, or not a run directory
            if self.accel.is_main_process:
                print(f"warning: warm_start={str(src)!r}: no BC warm-up snapshot {snap}/state.json; "
                      f"training the {self.cfg.bc_warmup_steps} warm-up steps here instead", file=sys.stderr)
            return
        diff = checkpoint.warm_start_diff(state, self.identity(), self.cfg.bc_warmup_steps)
        if diff:
            raise ValueError(f"warm_start={str(src)!r}: not this SM run's BC warm-up: {'; '.join(diff[:5])}")
        self._restore(snap, state)
        # the snapshot's own copy of the warm-up log lines (the BC run may be appending to its log now)
        bc_log = snap / "train_log.jsonl" if (snap / "train_log.jsonl").is_file() else src / "train_log.jsonl"
        if self.accel.is_main_process and bc_log.is_file():
            lines = [l for l in bc_log.read_text().splitlines() if json.loads(l)["step"] < self.step]
            atomic_write_text(log_path, "".join(l + "\n" for l in lines))

    # ---- the loop
    def _on_sigterm(self, signum, frame):
        self._stop = True

    def _stop_now(self) -> bool:
        """SIGTERM seen by any process: every process stops at the same step."""
        if self.accel.num_processes == 1:
            return self._stop
        flag = torch.tensor([float(self._stop)], device=self.accel.device)
        return bool(self.accel.reduce(flag, reduction="sum").item() > 0)

    def run(self) -> dict:
        from tqdm.auto import tqdm

        cfg = self.cfg
        main = self.accel.is_main_process
        resumed = self.load_checkpoint()
        log_path = self.out / "train_log.jsonl"
        if cfg.stop_after_warmup and resumed and self.step >= cfg.bc_warmup_steps:
            if self.has_warmup_snapshot():  # done already (SM runs may be reading it: leave it be)
                snap_log = self.out / checkpoint.BC_WARMUP / "train_log.jsonl"
                if main and not snap_log.exists():  # a snapshot of an older seqmatch: add its log lines
                    self.copy_warmup_log(log_path, cfg.bc_warmup_steps)
            elif self.step == cfg.bc_warmup_steps:  # the warm-up's own checkpoint: the snapshot is this state
                self.save_warmup_snapshot(log_path)
            else:
                raise ValueError(f"{self.out}: the checkpoint is at step {self.step}, past the warm-up, and "
                                 f"{checkpoint.BC_WARMUP}/ is missing or of another run; delete "
                                 f"{self.out / checkpoint.CHECKPOINT} to train the run again")
            return self.warmup_done()
        if resumed and main:  # keep the log lines of the steps the checkpoint holds, drop the rest
            kept = [l for l in log_path.read_text().splitlines() if json.loads(l)["step"] < self.step] \
                if log_path.exists() else []
            atomic_write_text(log_path, "".join(l + "\n" for l in kept))
        elif not resumed:  # from step 0: nothing of an earlier run may pass for this one's
            if main:
                for stale in (log_path, self.out / "summary.json"):
                    stale.unlink(missing_ok=True)
            if cfg.method == "sm" and cfg.warm_start:
                self.warm_start(log_path)
        self.accel.wait_for_everyone()
        prev = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.model.train()
        rec: dict = {}
        try:
            with open(log_path, "a") as log, tqdm(total=cfg.steps, initial=self.step, desc=f"{cfg.method}",
                                                  disable=not self.accel.is_main_process, mininterval=5) as bar:
                while self.step < cfg.steps:
                    rec = distributed.reduce_record(self.train_step(), self.accel)  # over processes
                    if self.accel.is_main_process and (rec["step"] % cfg.log_every == 0 or self.step == cfg.steps):
                        log.write(json.dumps(rec) + "\n")
                        log.flush()
                    # refresh=False: the postfix rides on update's mininterval (job logs stay short)
                    bar.set_postfix(loss=f"{rec.get('loss', float('nan')):.4g}", beta=f"{rec['beta']:.2f}",
                                    refresh=False)
                    bar.update(1)
                    # before any checkpoint of this step: a run resumed past it has written it
                    if cfg.method == "bc" and self.step == cfg.bc_warmup_steps < cfg.steps:
                        log.flush()
                        if not self.has_warmup_snapshot():  # an equal one stays (SM runs may be reading it)
                            self.save_warmup_snapshot(log_path)  # SM runs of this seed, noise and eta start here
                        if cfg.stop_after_warmup:
                            self.save_checkpoint()  # the BC run resumes here
                            self.accel.wait_for_everyone()
                            return self.warmup_done()
                    if self._stop_now():
                        self.save_checkpoint()
                        self.accel.wait_for_everyone()  # no process exits while the checkpoint is written
                        raise SystemExit(143)  # SLURM preemption: checkpoint saved, non-zero exit
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                        self.save_checkpoint()
        finally:
            signal.signal(signal.SIGTERM, prev)
        if not rec and log_path.exists():  # resumed at the last step: its record is in the log
            lines = log_path.read_text().splitlines()
            rec = json.loads(lines[-1]) if lines else {}
        return self.finish(rec)

    def has_warmup_snapshot(self) -> bool:
        """bc_warmup/ holds this run's state at step bc_warmup_steps. Every process looks before any
        writes one (the barriers), so all of them take the same branch."""
        self.accel.wait_for_everyone()
        state = checkpoint.read_state(self.out / checkpoint.BC_WARMUP)
        have = (state is not None and state.get("step") == self.cfg.bc_warmup_steps
                and not checkpoint.stale(state, self.identity()))
        self.accel.wait_for_everyone()
        return have

    def save_warmup_snapshot(self, log_path: Path):
        """bc_warmup/: the state at step bc_warmup_steps, and a copy of the log lines of those steps."""
        self.save_checkpoint(checkpoint.BC_WARMUP)
        if self.accel.is_main_process:
            self.copy_warmup_log(log_path, self.step)
        self.accel.wait_for_everyone()

    def copy_warmup_log(self, log_path: Path, upto: int):
        """bc_warmup/train_log.jsonl: the log lines of the warm-up steps (SM runs read this copy; the
        BC run's own log may be rewritten while they start)."""
        lines = [l for l in log_path.read_text().splitlines() if json.loads(l)["step"] < upto] \
            if log_path.is_file() else []
        atomic_write_text(self.out / checkpoint.BC_WARMUP / "train_log.jsonl", "".join(l + "\n" for l in lines))

    def warmup_done(self) -> dict:
        """A stop_after_warmup run ends with WARMUP_DONE (no summary.json, no model/: the run is not
        done; the workflow's bc_warmup job declares this file)."""
        done = {"method": self.cfg.method, "steps": self.step, "bc_warmup_steps": self.cfg.bc_warmup_steps,
                "snapshot": checkpoint.BC_WARMUP, "stopped_after_warmup": True}
        if self.accel.is_main_process:
            atomic_write_text(self.out / WARMUP_DONE, json.dumps(done, indent=1) + "\n")
        self.accel.wait_for_everyone()
        return done

    def finish(self, last: dict) -> dict:
        from seqmatch.model import save_model

        self.save_checkpoint()  # a complete run is resumable as "already done"
        if self.accel.is_main_process:
            model_dir = self.out / "model"
            tmp = self.out / "model.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            save_model(self.accel.unwrap_model(self.model), self.tokenizer, tmp)
            if model_dir.exists():
                shutil.rmtree(model_dir)
            tmp.rename(model_dir)
        self.accel.wait_for_everyone()  # every process returns once model/ is complete
        digests = distributed.check_same_weights(self.accel, self.accel.unwrap_model(self.model))
        return self.write_summary(last, {"process_weights_sha256": digests} if digests else {})

    def write_summary(self, last: dict, extra: dict | None = None) -> dict:
        cfg = self.cfg
        # the first step pays one-off costs; an SM run's time is that of its SM steps (beta < 1, after
        # the BC warm-up, whose steps cost what BC steps cost), as the paper's Tables 3 and 4 report
        first = 1
        if cfg.method == "sm":
            first = next((t + 1 for t in range(len(self.grad_times)) if self.beta_at(t) < 1.0), len(self.grad_times))
        g = self.grad_times[first:] or self.grad_times[1:] or self.grad_times
        sm = cfg.method == "sm" and bool(self.sample_times)
        mean_g = statistics.fmean(g) if g else float("nan")
        mean_s = statistics.fmean(self.sample_times) if sm else None
        per = self.interval if sm else None
        summary = {
            "method": cfg.method, "steps": self.step, "seed": cfg.seed,
            "grad_step_time_mean": mean_g,
            "grad_step_time_sd": statistics.stdev(g) if len(g) > 1 else 0.0,
            "sampling_time_mean": mean_s,
            "sampling_time_sd": (statistics.stdev(self.sample_times) if sm and len(self.sample_times) > 1 else None),
            "sampling_rounds": len(self.sample_times),
            "grad_steps_per_sample": per,
            "amortized_time": mean_g + (mean_s / per if sm else 0.0),
            "device": device_name(self.accel.device), "num_processes": self.accel.num_processes,
            "tokens_per_s": last.get("tokens_per_s"), "final_loss": last.get("loss"),
            "nonfinite_skipped": self.nonfinite, "config": dataclasses.asdict(cfg),
            "model_config": dataclasses.asdict(self.model_cfg), **(extra or {}),
        }
        if self.accel.is_main_process:
            tmp = self.out / "summary.json.tmp"
            tmp.write_text(json.dumps(summary, indent=1))
            tmp.rename(self.out / "summary.json")
        return summary


def rollout_stats(examples: list[Example], prompts: list[list[int]], out, bkspc_id: int) -> dict:
    """One sampling round in numbers: mean generated actions per rollout, the share of them that
    are ``<bkspc>``, the share of rollouts that reached ``<eos>`` and, where the rows have a prompt
    (arithmetic), the share whose final state is the row's own completion (the answer, after
    backspaces) — the training-time view of test accuracy."""
    n = max(len(out.actions), 1)
    lengths = [len(a) for a in out.actions]
    total = max(sum(lengths), 1)
    stats = {"rollout_len": sum(lengths) / n,
             "rollout_bkspc_rate": sum(a.count(bkspc_id) for a in out.actions) / total,
             "rollout_finished": sum(map(bool, out.finished)) / n}
    if examples and all(ex.prompt for ex in examples):
        correct = [fin and state == p + ex.completion[:-1]
                   for ex, p, state, fin in zip(examples, prompts, out.states, out.finished)]
        stats["rollout_accuracy"] = sum(correct) / n
    return stats


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------------------- CLI

def _parse_value(ftype, text: str):
    t = ftype if isinstance(ftype, str) else getattr(ftype, "__name__", str(ftype))
    if "bool" in t:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
    if "int" in t and "float" not in t:
        return int(text)
    if "float" in t:
        return float(text)
    if "list" in t:
        return [s for s in text.split(",") if s]
    if "None" in t and text.lower() in ("none", "null", ""):
        return None
    return text


def build_parser() -> argparse.ArgumentParser:
    from seqmatch.model import ModelConfig

    p = argparse.ArgumentParser(prog="python -m seqmatch.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", metavar="FILE",
                   help="run config (JSON or YAML): sections 'train' and 'model' holding the fields below "
                        "under the same names (the workflow writes one per run, seqmatch.runs); flags "
                        "given as well override its values")
    for cls in (TrainConfig, ModelConfig):
        group = p.add_argument_group(cls.__name__)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore
            # SUPPRESS: only the flags given appear in the namespace (they override --config)
            group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=argparse.SUPPRESS,
                               type=lambda s, t=f.type: _parse_value(t, s), metavar=str(f.type).upper(),
                               help=f"{f.metadata['help']} (default: {default!r})".replace("%", "%%"))
    return p


def load_run_config(path: str) -> dict[str, dict]:
    """{"train": {...}, "model": {...}} from a JSON/YAML run config; ValueError naming the file and
    the offending key for anything else."""
    from seqmatch.model import ModelConfig
    from seqmatch.options import read_config_file

    cfg = read_config_file(path)
    if set(cfg) - {"train", "model"}:
        raise ValueError(f"--config {path}: expected a mapping with sections 'train' and 'model', got {sorted(cfg)}")
    for section, cls in (("train", TrainConfig), ("model", ModelConfig)):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg.get(section) or {}) - names)
        if unknown:
            raise ValueError(f"--config {path}: unknown {section} key(s) {', '.join(unknown)} "
                             f"(not {cls.__name__} fields; see python -m seqmatch.train --help)")
    return {"train": dict(cfg.get("train") or {}), "model": dict(cfg.get("model") or {})}


def main(argv=None) -> int:
    from seqmatch.model import ModelConfig

    args = vars(build_parser().parse_args(argv))
    tnames = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        values = load_run_config(args.pop("config")) if args.get("config") else {"train": {}, "model": {}}
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.pop("config", None)
    for k, v in args.items():  # flags override the file
        values["train" if k in tnames else "model"][k] = v
    cfg = TrainConfig(**values["train"])
    model_cfg = ModelConfig(**values["model"])
    try:
        trainer = Trainer(cfg, model_cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(cfg.out_dir)
    # (a stop_after_warmup job on a finished run goes through run(): it must write bc_warmup.json)
    if not cfg.stop_after_warmup and (out / "summary.json").exists() and (out / "model").exists():
        state = checkpoint.read_state(out / checkpoint.CHECKPOINT) or {}
        if state.get("step") == cfg.steps and not checkpoint.stale(state, trainer.identity()):
            if trainer.accel.is_main_process:
                print(f"{cfg.out_dir}: already complete ({cfg.steps} steps)")
            return 0
    try:
        summary = trainer.run()
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except ValueError as e:  # e.g. a warm_start run that trained something else
        print(f"error: {e}", file=sys.stderr)
        return 2
    if trainer.accel.is_main_process:  # one line per run, not per process
        print(json.dumps({k: summary[k] for k in ("method", "steps", "final_loss", "grad_step_time_mean",
                                                   "amortized_time", "device", "stopped_after_warmup")
                          if k in summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
