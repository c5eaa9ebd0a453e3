"""``SequenceMatchTrainer``: MLE, BC ("MLE + <bkspc>"), SequenceMatch and unlikelihood training
(paper Alg. 1, App. E), and its command line.

    from seqmatch import SequenceMatchConfig, SequenceMatchTrainer
    trainer = SequenceMatchTrainer(model="path/or/hub-id", args=SequenceMatchConfig(output_dir="out", method="sm"),
                                   train_dataset=rows, processing_class=tokenizer)
    trainer.train()

    python -m seqmatch.train --config RUN/run_config.json           # what the workflow runs
    python -m seqmatch.train --output-dir DIR --train-file train.jsonl --tokenizer TOKDIR --method sm \
        [--alpha 0.01 --gamma 0.998 --eta 0.001 ...]      # every SequenceMatchConfig / ModelConfig field

The command line builds the same ``SequenceMatchConfig`` and calls the same trainer: one way in.

* ``mle``: cross-entropy on clean data. ``ulk``: MLE plus the unlikelihood token loss.
* ``bc``: cross-entropy on noised data (noise token, then a ``<bkspc>`` label; §4.2).
* ``sm``: BC alone for ``bc_warmup_steps``; then ``beta * L_BC + (1 - beta) * L_SM`` with beta
  annealed linearly 1 -> ``beta_final`` over ``beta_anneal_steps``; both terms per token (L_SM is
  −J over the data rows' mean action count, ``seqmatch.losses.sequence_match_loss``). Rollouts of
  the current policy enter a FIFO replay buffer every ``sampling_interval`` steps; each step's
  batch holds data rows and replay rows, transformed by the same Algorithm A and run in one
  forward pass.

Data: a ``datasets.Dataset`` or a list of dicts, each row ``prompt``/``completion``,
``question``/``answer`` (made ``"{question} Solution:"`` / ``" {answer}"`` by
``seqmatch.data.arithmetic_row``, as the pipeline's data step does) or ``text`` (no prompt).

Runs under accelerate (``accelerate launch -m seqmatch.train ...`` for several GPUs). Checkpoints
are written atomically every ``save_steps`` steps and on SIGTERM; training again into the same
``output_dir`` resumes from ``DIR/checkpoint`` when it is this run's (same config, model, tokenizer
and data) and, on CPU, ends bit-identical to an uninterrupted run (``seqmatch.checkpoint``).
Outputs: ``DIR/model/`` (``AutoModelForCausalLM.from_pretrained`` loads it; ``seqmatch.load_model``
adds the offset head; a model card ``README.md``), ``DIR/train_log.jsonl`` and, last,
``DIR/summary.json``; a BC run also writes ``DIR/bc_warmup/`` at step ``bc_warmup_steps``. With
``stop_after_warmup`` a BC run stops there instead: ``DIR/bc_warmup/``, ``DIR/checkpoint/``
(the same command without the flag resumes from it) and ``DIR/bc_warmup.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
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
from seqmatch.config import SequenceMatchConfig, resolve_aliases
from seqmatch.noise import add_backspace_noise, digit_noise_ids, random_noise_ids, require_bases
from seqmatch.runs import WARMUP_DONE

# --------------------------------------------------------------------------------------- data

# what a training row may be, in the order they are tried
ROW_FORMATS = ("prompt/completion", "question/answer", "text")


def training_row(row, where: str) -> dict:
    """One row as ``{"prompt", "completion", "base"}`` (base None where the row has none): prompt/completion rows as they are,
    question/answer rows as the pipeline's data step makes them (``arithmetic_row``), text rows
    with an empty prompt. ValueError naming ``where`` (file:line, or dataset[i]) otherwise."""
    from seqmatch.data.arithmetic import arithmetic_row
    from seqmatch.data.sources import _row_error

    if isinstance(row, dict) and "completion" in row:
        problem = _row_error(where, row, ("completion",))
        if problem is None and not isinstance(row.get("prompt", ""), str):
            problem = f"{where}: 'prompt' must be a string, got {type(row['prompt']).__name__}"
        if problem:
            raise ValueError(problem)
        # no base is no base (ground-truth noise refuses such rows, seqmatch.noise.require_bases), not 10
        return {"prompt": row.get("prompt") or "", "completion": str(row["completion"]),
                "base": int(row["base"]) if row.get("base") is not None else None}
    if isinstance(row, dict) and ("question" in row or "answer" in row):
        problem = _row_error(where, row, ("question", "answer"))
        if problem:
            raise ValueError(problem)
        qa = arithmetic_row(str(row["question"]), str(row["answer"]), str(row.get("task", "qa")), "")
        return {"prompt": qa["prompt"], "completion": qa["completion"], "base": qa["base"], "answer": qa["answer"]}
    if isinstance(row, dict) and "text" in row:
        problem = _row_error(where, row, ("text",))
        if problem:
            raise ValueError(problem)
        return {"prompt": "", "completion": str(row["text"]), "base": None}
    keys = ", ".join(map(repr, sorted(row))) if isinstance(row, dict) else type(row).__name__
    raise ValueError(f"{where}: expected a row with {', '.join(ROW_FORMATS)}; got {keys or 'no keys'}")


def training_rows(dataset, name: str) -> list[dict]:
    """``training_row`` of every row of a ``datasets.Dataset`` or a list of dicts."""
    if dataset is None or isinstance(dataset, (str, bytes)) or not hasattr(dataset, "__len__"):
        raise ValueError(f"{name}: expected a datasets.Dataset or a list of dicts, got {type(dataset).__name__}")
    rows = [training_row(row, f"{name}[{i}]") for i, row in enumerate(dataset)]
    if not rows:
        raise ValueError(f"{name}: no rows")
    return rows


def load_rows(path: str) -> list[dict]:
    """The rows of a JSONL file (seqmatch.data output, or rows of your own), each a ``training_row``;
    errors name file:line."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not a JSON object on one line ({e})") from None
            rows.append(training_row(row, f"{path}:{n}"))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def rows_sha256(rows: list[dict]) -> str:
    """What the run trains on, as a digest (part of the run's identity: a checkpoint resumes only
    the run of the same data)."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


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


# ---------------------------------------------------------------------------------- the policy

def tokenizer_sha256(tokenizer) -> str:
    """The tokenizer as a digest: its vocabulary (``<bkspc>`` included) and special tokens."""
    vocab = sorted(tokenizer.get_vocab().items())
    special = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    return hashlib.sha256(json.dumps([vocab, special]).encode()).hexdigest()


def build_policy(model, tokenizer, init_kwargs: dict | None):
    """``(SeqMatchLM, ModelConfig, identity)`` from what a user hands the trainer: a path or hub id
    (``ModelConfig(name_or_path=model, **init_kwargs)``), a ``ModelConfig`` (a model from scratch,
    or a path with every option), a transformers causal LM object (``<bkspc>`` row and offset head
    added per ``init_kwargs``) or a ``SeqMatchLM`` (e.g. from ``seqmatch.load_model``), used as it is.
    ``identity``: the model part of the run's identity (objects: their config's digest too)."""
    from seqmatch.model import ModelConfig, SeqMatchLM, build_model

    init_kwargs = dict(init_kwargs or {})
    if isinstance(model, ModelConfig):
        if init_kwargs:
            raise ValueError("model_init_kwargs apply to a model path or object; the ModelConfig given as model "
                             "holds every option already")
        return build_model(model, tokenizer), model, dataclasses.asdict(model)
    if isinstance(model, (str, Path)):
        cfg = ModelConfig.from_dict({**init_kwargs, "name_or_path": str(model)})
        return build_model(cfg, tokenizer), cfg, dataclasses.asdict(cfg)
    if isinstance(model, SeqMatchLM):
        if init_kwargs:
            raise ValueError("model_init_kwargs do not apply to a SeqMatchLM (it is built already)")
        policy, cfg = model, model.config
    elif isinstance(model, torch.nn.Module) and hasattr(model, "config") and hasattr(model, "get_output_embeddings"):
        name = getattr(model.config, "_name_or_path", "") or None
        cfg = ModelConfig.from_dict({**init_kwargs, "name_or_path": name})
        policy = build_model(cfg, tokenizer, base=model)
    else:
        raise ValueError(f"model: expected a path or hub id, a seqmatch.ModelConfig, a transformers causal LM "
                         f"or a SeqMatchLM, got {type(model).__name__}")
    hf_config = policy.hf_model.config.to_json_string(use_diff=False)
    digest = hashlib.sha256(hf_config.encode()).hexdigest()
    return policy, cfg, {**dataclasses.asdict(cfg), "object_config_sha256": digest}


# ------------------------------------------------------------------------------------ trainer

class NonFiniteLossError(RuntimeError):
    pass


class SequenceMatchTrainer:
    """Train a causal LM with ``<bkspc>`` by MLE, BC, SequenceMatch or unlikelihood: a thin loop
    around the pure losses of ``seqmatch.losses``.

    ``model``: a path or hub id (built with ``args.model_init_kwargs``), a ``seqmatch.ModelConfig``,
    a transformers causal LM object or a ``SeqMatchLM``. ``args``: a ``SequenceMatchConfig``.
    ``train_dataset`` / ``eval_dataset``: a ``datasets.Dataset`` or a list of dicts (``prompt`` and
    ``completion``, ``question`` and ``answer``, or ``text``). ``processing_class``: the tokenizer,
    an object or a path (default: the model's path); ``<bkspc>`` is added to it when missing.
    ``callbacks``: ``transformers.TrainerCallback`` objects (or anything with some of its methods:
    ``on_train_begin``, ``on_step_begin``, ``on_step_end``, ``on_log``, ``on_evaluate``, ``on_save``
    (after each ``save_steps`` checkpoint), ``on_train_end``);
    ``control.should_training_stop`` set by one ends training after that step with a checkpoint.
    """

    def __init__(self, model=None, args: SequenceMatchConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, callbacks=None):
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from transformers import TrainerControl, TrainerState

        from seqmatch import losses
        from seqmatch.data import load_tokenizer
        from seqmatch.replay import ReplayBuffer, sampling_interval

        if args is None:
            raise ValueError("args: a SequenceMatchConfig is required (output_dir, method, ...)")
        cfg = args
        cfg.validate()
        self.args = self.cfg = cfg
        self.losses = losses
        self.out = Path(cfg.output_dir)
        self.accel = Accelerator(mixed_precision=cfg.mixed_precision,
                                 gradient_accumulation_steps=cfg.gradient_accumulation_steps)
        distributed.check_world_size(self.accel, cfg.num_processes)  # before anything is read or written
        set_seed(cfg.seed)
        rows = training_rows(train_dataset, "train_dataset")
        if cfg.noise == "ground_truth" and cfg.eta > 0:  # digits of each row's base (from_run_config names the file)
            require_bases(rows, "train_dataset")
        self.eval_rows = training_rows(eval_dataset, "eval_dataset") if eval_dataset is not None else None
        if processing_class is None:  # the model's own tokenizer, as transformers users expect
            processing_class = getattr(model, "name_or_path", model)
            if not processing_class or not isinstance(processing_class, (str, Path)):
                raise ValueError("processing_class: give the tokenizer (an object or a path) when the model is "
                                 "not a path")
        self.tokenizer = load_tokenizer(processing_class) if isinstance(processing_class, (str, Path)) \
            else processing_class
        policy, self.model_cfg, self.model_identity = build_policy(model, self.tokenizer, cfg.model_init_kwargs)
        self.out.mkdir(parents=True, exist_ok=True)  # after the checks of the tokenizer and model paths
        self.bos, self.eos = policy.bos_id, policy.eos_id
        self.bkspc, self.pad = policy.bkspc_id, policy.pad_id
        self.attn_implementation = policy.attn_implementation
        self.data_sha256, self.tokenizer_sha256 = rows_sha256(rows), tokenizer_sha256(self.tokenizer)
        self.examples = encode_rows(rows, self.tokenizer)
        params = [p for p in policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.scheduler = losses.make_lr_scheduler(self.optimizer, warmup_steps=cfg.warmup_steps,
                                                  total_steps=cfg.max_steps)
        # the scheduler stays unwrapped: one schedule step per optimizer step, whatever the process count
        self.model, self.optimizer = self.accel.prepare(policy, self.optimizer)
        # data order, noise, rollout prompts, sampling: one stream per process, or every GPU would
        # train on (and sample) the same rows; process 0 keeps the single-process streams
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        if self.accel.process_index > 0:
            self._own_streams()
        self.special = {self.bos, self.eos, self.bkspc, self.pad}
        self.vocab_noise = random_noise_ids(len(self.tokenizer), self.special)
        self.model_rows = cfg.model_rows or cfg.per_device_train_batch_size
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
        # transformers' callback protocol (TrainerState, TrainerControl, TrainerCallback's methods)
        self.callbacks = list(callbacks or [])
        if cfg.report_to == "tensorboard":
            from transformers.integrations import TensorBoardCallback

            self.callbacks.append(TensorBoardCallback())
        self.state = TrainerState(max_steps=cfg.max_steps, logging_steps=cfg.logging_steps,
                                  eval_steps=cfg.eval_steps, save_steps=cfg.save_steps,
                                  train_batch_size=cfg.per_device_train_batch_size,
                                  is_local_process_zero=self.accel.is_local_main_process,
                                  is_world_process_zero=self.accel.is_main_process)
        self.control = TrainerControl()

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def _event(self, name: str, **kwargs):
        """Call ``name`` on every callback, as transformers' CallbackHandler does (a callback may
        return a new control). ``model`` is the transformers model, ``policy`` the ``SeqMatchLM``
        around it (offset head included)."""
        policy = self.accel.unwrap_model(self.model)
        for cb in self.callbacks:
            fn = getattr(cb, name, None)
            if fn is None:
                continue
            out = fn(self.cfg, self.state, self.control, model=policy.hf_model, policy=policy,
                     processing_class=self.tokenizer, optimizer=self.optimizer, lr_scheduler=self.scheduler,
                     **kwargs)
            if out is not None:
                self.control = out
        return self.control


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

    def draw_examples(self, n: int, rng=None) -> list[Example]:
        idx = (self.rng if rng is None else rng).integers(0, len(self.examples), size=n)
        return [self.examples[i] for i in idx]

    def replay_rng(self, *salt: int) -> np.random.Generator:
        """The stream of the replay side (rollout prompts, rows drawn from the buffer) at this step:
        a function of (seed, process, step, salt), so it needs no checkpoint, and apart from the data
        stream, so an SM run draws exactly the data rows and noise of the BC run it warm-starts from
        in every step: SM − BC is paired step by step, not only by seed (common random numbers)."""
        return np.random.default_rng([self.cfg.seed, self.accel.process_index, self.step, *salt])

    def rollout_prompts(self, n: int) -> tuple[list[Example], list[list[int]]]:
        """Prompts from training data (App. E): the question for prompted rows, else a random
        prefix of length 1..max_prompt_len; with the examples they come from."""
        rng = self.replay_rng(0)
        examples, prompts = self.draw_examples(n, rng), []
        for ex in examples:
            if ex.prompt:
                prompts.append(ex.prompt[: self.cfg.max_prompt_len])
            else:
                k = int(rng.integers(1, min(self.cfg.max_prompt_len, len(ex.completion) - 1) + 1))
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

    def make_batch(self, n_data: int, n_model: int, noised: bool, micro: int = 0):
        """``n_data`` training rows (noised for BC/SM) and ``n_model`` replayed rollouts, one batch
        (``micro``: its index among the step's micro-batches)."""
        trajs = [self.data_trajectory(ex, noised) for ex in self.draw_examples(n_data)]
        is_model = [False] * len(trajs)
        if n_model:
            trajs += [self.model_trajectory(it) for it in self.buffer.sample(n_model, self.replay_rng(1, micro))]
            is_model += [True] * n_model
        return collate(trajs, pad_id=self.pad, attn_implementation=self.attn_implementation, is_model=is_model,
                       dtype=torch.float32).to(self.accel.device)

    def train_step(self) -> dict:
        cfg = self.cfg
        beta = self.beta()
        use_model_rows = cfg.method == "sm" and beta < 1.0
        if use_model_rows and (self.last_sample_step is None or self.step - self.last_sample_step >= self.interval):
            self.fill_buffer()
        noised = cfg.method in ("bc", "sm")
        micro = cfg.per_device_train_batch_size // cfg.gradient_accumulation_steps
        n_model = self.model_rows // cfg.gradient_accumulation_steps if use_model_rows else 0
        t0 = time.perf_counter()
        logs, tokens, skipped = [], 0, False
        diag = {}
        want_diag = (use_model_rows and cfg.grad_diagnostics_every and self.accel.num_processes == 1
                     and self.step % cfg.grad_diagnostics_every == 0)
        self.optimizer.zero_grad(set_to_none=True)
        for m in range(cfg.gradient_accumulation_steps):
            batch = self.make_batch(micro, n_model, noised, m)
            tokens += int(batch.state_mask.sum())
            if want_diag and m == 0:  # its own RNG state: dropout there must not move training's streams
                dev = self.accel.device
                with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                    diag = self.gradient_diagnostics(batch, beta)
            # DDP syncs gradients on the last micro-batch only; accelerate's backward divides the
            # loss by grad_accum, so the step's gradient is the mean over micro-batches
            last = m == cfg.gradient_accumulation_steps - 1
            sync = contextlib.nullcontext() if last else self.accel.no_sync(self.model)
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
        return checkpoint.identity(self.cfg, self.model_identity, self.data_sha256, self.tokenizer_sha256,
                                   self.accel.num_processes)

    def trainable_state(self) -> dict:
        return checkpoint.trainable_state(self.accel.unwrap_model(self.model))

    def save_checkpoint(self, name: str = checkpoint.CHECKPOINT):
        # every process's own streams and replay buffer (None with one process), then one writer per
        # run directory (the processes hold the same weights)
        ranks = distributed.gather(self.accel, checkpoint.capture_process(self.rng, self.gen, self.process_state())
                                   if self.accel.process_index > 0 else None)
        if not self.accel.is_main_process:
            return
        progress = {"step": self.step, "nonfinite": self.nonfinite, "last_sample_step": self.last_sample_step,
                    "grad_times": self.grad_times, "sample_times": self.sample_times,
                    "buffer": self.process_state()}
        checkpoint.save(self.out / name, model=self.accel.unwrap_model(self.model), optimizer=self.optimizer,
                        scheduler=self.scheduler, rng=self.rng, gen=self.gen, progress=progress,
                        identity=self.identity(), ranks=ranks[1:] if ranks else None)

    def process_state(self) -> dict:
        """This process's replay buffer and latest rollout statistics (both its own, per process)."""
        return {**self.buffer.state_dict(), "rollout_stats": self.rollout_stats}

    def load_checkpoint(self, discard: bool = False) -> bool:
        """Restore ``output_dir/checkpoint`` if it is this run's (``discard``: never; the next save
        replaces it)."""
        final = self.out / checkpoint.CHECKPOINT
        main = self.accel.is_main_process  # one process moves and deletes files; the others wait
        if main:
            checkpoint.recover(final)
        self.accel.wait_for_everyone()
        state = checkpoint.read_state(final)
        if state is None or discard:
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
        if main:  # the job log says where a retried or requeued job went on from
            print(f"{final}: resuming at step {self.step} of {self.cfg.max_steps}", file=sys.stderr)
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
        buffer = dict(buffer)
        self.rollout_stats = buffer.pop("rollout_stats", {})  # the log lines until the next round carry them
        self.buffer.load_state_dict(buffer)

    def warm_start(self, log_path: Path):
        """Start an SM run from a BC run's bc_warmup/ snapshot (SequenceMatchConfig.warm_start): its state
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
        # A BC run never samples: its snapshot's buffer is empty but sized by the BC run's config,
        # which has no replay keys (capacity 1,000). The SM run keeps a buffer of its own capacity.
        if len(self.buffer):
            raise ValueError(f"warm_start={str(src)!r}: its snapshot holds {len(self.buffer)} replayed rollouts "
                             f"(a BC warm-up samples none)")
        self.buffer = type(self.buffer)(self.cfg.replay_capacity)
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

    def train(self, resume_from_checkpoint: bool | None = None) -> dict:
        """Train ``max_steps`` steps; return the run's summary (``summary.json``).

        ``resume_from_checkpoint``: None (default, what the command line does) resumes from
        ``output_dir/checkpoint`` when it holds this run's state (same config, model, tokenizer,
        data and process count; another run's checkpoint is named on stderr and replaced); True
        requires such a checkpoint; False starts from step 0 whatever is there."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        main = self.accel.is_main_process
        resumed = self.load_checkpoint(discard=resume_from_checkpoint is False)
        if resume_from_checkpoint is True and not resumed:
            raise ValueError(f"resume_from_checkpoint=True, but {self.out / checkpoint.CHECKPOINT} holds no "
                             f"checkpoint of this run")
        self.state.global_step = self.step
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
                self.state.global_step = self.step
        self.accel.wait_for_everyone()
        prev = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.model.train()
        self._event("on_train_begin")
        rec: dict = {}
        try:
            with open(log_path, "a") as log, tqdm(total=cfg.max_steps, initial=self.step, desc=f"{cfg.method}",
                                                  disable=not self.accel.is_main_process, mininterval=5) as bar:
                while self.step < cfg.max_steps:
                    self._event("on_step_begin")
                    rec = distributed.reduce_record(self.train_step(), self.accel)  # over processes
                    self.state.global_step = self.step
                    last = self.step == cfg.max_steps
                    if rec["step"] % cfg.logging_steps == 0 or last:
                        if self.accel.is_main_process:
                            log.write(json.dumps(rec) + "\n")
                            log.flush()
                        self.log(rec)
                    # refresh=False: the postfix rides on update's mininterval (job logs stay short)
                    bar.set_postfix(loss=f"{rec.get('loss', float('nan')):.4g}", beta=f"{rec['beta']:.2f}",
                                    refresh=False)
                    bar.update(1)
                    if self.eval_rows is not None and (last or (cfg.eval_steps and self.step % cfg.eval_steps == 0)):
                        self.evaluate()
                    self._event("on_step_end")
                    # before any checkpoint of this step: a run resumed past it has written it
                    if cfg.method == "bc" and self.step == cfg.bc_warmup_steps < cfg.max_steps:
                        log.flush()
                        if not self.has_warmup_snapshot():  # an equal one stays (SM runs may be reading it)
                            self.save_warmup_snapshot(log_path)  # SM runs of this seed, noise and eta start here
                        if cfg.stop_after_warmup:
                            self.save_checkpoint()  # the BC run resumes here
                            self.accel.wait_for_everyone()
                            self._event("on_train_end")
                            return self.warmup_done()
                    if self._stop_now():
                        self.save_checkpoint()
                        self.accel.wait_for_everyone()  # no process exits while the checkpoint is written
                        raise SystemExit(143)  # SLURM preemption: checkpoint saved, non-zero exit
                    if self.control.should_training_stop and not last:  # a callback's stop: resumable
                        self.save_checkpoint()
                        self.accel.wait_for_everyone()
                        self._event("on_train_end")
                        return {"method": cfg.method, "steps": self.step, "stopped_early": True}
                    if cfg.save_steps and self.step % cfg.save_steps == 0 and not last:
                        self.save_checkpoint()
                        self._event("on_save")
        finally:
            signal.signal(signal.SIGTERM, prev)
        if not rec and log_path.exists():  # resumed at the last step: its record is in the log
            lines = log_path.read_text().splitlines()
            rec = json.loads(lines[-1]) if lines else {}
        summary = self.finish(rec)
        self._event("on_train_end")
        return summary

    def log(self, logs: dict) -> None:
        """Hand a record to the callbacks' ``on_log`` (and so to ``report_to``): its numbers, without
        ``step`` (the x-axis is ``state.global_step``, the steps done: a train_log.jsonl line's
        ``step`` + 1)."""
        scalars = {k: (int(v) if isinstance(v, bool) else v) for k, v in logs.items()
                   if isinstance(v, (int, float)) and k != "step"}
        self.state.log_history.append({**scalars, "step": self.state.global_step})
        self._event("on_log", logs=scalars)

    def evaluate(self, eval_dataset=None, metric_key_prefix: str = "eval") -> dict:
        """Metrics of the model on ``eval_dataset`` (default: the trainer's): ``eval_loss`` (clean
        cross-entropy per predicted token, nats; the prompt left out with ``mask_prompt``) and
        ``eval_perplexity``; for rows with a prompt also ``eval_accuracy``
        (``seqmatch.evaluate.arithmetic_accuracy``: sampled with ``temperature``/``top_p``, backspaces
        applied, against the row's answer or completion) and ``eval_bkspc_rate``. Sampling uses
        its own generator (seed, step), so evaluating changes no training stream."""
        from seqmatch.evaluate import arithmetic_accuracy, heldout_perplexity

        rows = training_rows(eval_dataset, "eval_dataset") if eval_dataset is not None else self.eval_rows
        if rows is None:
            raise ValueError("evaluate: no eval_dataset (give one to the trainer or to evaluate)")
        cfg = self.cfg
        model = self.accel.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        try:
            ppl = heldout_perplexity(model, self.tokenizer, rows, batch_size=cfg.per_device_eval_batch_size,
                                     mask_prompt=cfg.mask_prompt)
            metrics = {"loss": ppl["mean_nll"], "perplexity": ppl["perplexity"]}
            prompted = [r for r in rows if r["prompt"]]
            if prompted:
                acc = arithmetic_accuracy(model, self.tokenizer, prompted, max_new_tokens=cfg.max_new_tokens,
                                          temperature=cfg.temperature, top_p=cfg.top_p,
                                          seed=cfg.seed * 1_000_003 + self.step,
                                          batch_size=cfg.per_device_eval_batch_size)
                metrics.update(accuracy=acc["accuracy"], bkspc_rate=acc["bkspc_rate"])
        finally:
            model.train(was_training)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items()}
        self.last_eval = metrics
        self.log(metrics)
        self._event("on_evaluate", metrics=metrics)
        return metrics

    def save_model(self, output_dir: str | None = None) -> Path:
        """Write the model (``AutoModelForCausalLM.from_pretrained`` loads it), its tokenizer and a
        model card to ``output_dir`` (default ``args.output_dir/model``), atomically."""
        from seqmatch.model import save_model

        final = Path(output_dir) if output_dir is not None else self.out / "model"
        if self.accel.is_main_process:
            tmp = final.with_name(final.name + ".tmp")
            if tmp.exists():
                shutil.rmtree(tmp)
            save_model(self.accel.unwrap_model(self.model), self.tokenizer, tmp,
                       card=self.model_card_info())
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        self.accel.wait_for_everyone()  # every process returns once the directory is complete
        return final

    def model_card_info(self) -> dict:
        """What the model card says about this run (``seqmatch.model.model_card``)."""
        cfg = self.cfg
        keys = ["method", "max_steps", "per_device_train_batch_size", "learning_rate", "seed"]
        if cfg.method in ("bc", "sm"):
            keys += ["noise", "eta"]
        if cfg.method == "sm":
            keys += ["alpha", "gamma", "divergence", "bc_warmup_steps", "beta_final", "beta_anneal_steps"]
        return {"hyperparameters": {k: getattr(cfg, k) for k in keys}, "train_rows": len(self.examples),
                "data_sha256": self.data_sha256, "metrics": dict(getattr(self, "last_eval", {}) or {}),
                "step": self.step}

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
        self.save_checkpoint()  # a complete run is resumable as "already done"
        if self.eval_rows is not None and not getattr(self, "last_eval", None):  # resumed at the end
            self.evaluate()
        self.save_model()
        digests = distributed.check_same_weights(self.accel, self.accel.unwrap_model(self.model))
        extra = {"process_weights_sha256": digests} if digests else {}
        if getattr(self, "last_eval", None):
            extra["eval"] = self.last_eval
        return self.write_summary(last, extra)

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
            "model_config": self.model_identity, "data_sha256": self.data_sha256, **(extra or {}),
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

# what the command line takes besides SequenceMatchConfig and ModelConfig fields (the run config
# file's train section holds them too): the data and the tokenizer, handed to the trainer
SCRIPT_FIELDS = {
    "train_file": "JSONL training rows: prompt/completion (seqmatch.data output), question/answer or text",
    "eval_file": "JSONL rows to evaluate on (eval_loss, eval_accuracy; SequenceMatchConfig.eval_steps); "
                 "empty: none",
    "tokenizer": "tokenizer directory or hub id (default: the model's name_or_path)",
}
# SequenceMatchConfig fields the command line leaves out (the run config's model section holds them)
API_ONLY = ("model_init_kwargs",)


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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    from seqmatch.config import ALIASES
    from seqmatch.model import ModelConfig

    old_names = {new: old for old, new in ALIASES.items()}
    p = argparse.ArgumentParser(prog="python -m seqmatch.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", metavar="FILE",
                   help="run config (JSON or YAML): sections 'train' and 'model' holding the fields below "
                        "under the same names (the workflow writes one per run, seqmatch.runs); flags "
                        "given as well override its values")
    group = p.add_argument_group("data")
    for name, text in SCRIPT_FIELDS.items():
        group.add_argument(_flag(name), dest=name, default=argparse.SUPPRESS, metavar="PATH", help=text)
    for cls in (SequenceMatchConfig, ModelConfig):
        group = p.add_argument_group(cls.__name__)
        for f in dataclasses.fields(cls):
            if f.name in API_ONLY:
                continue
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore
            # SUPPRESS: only the flags given appear in the namespace (they override --config)
            kw = dict(default=argparse.SUPPRESS, type=lambda s, t=f.type: _parse_value(t, s),
                      metavar=str(f.type).upper())
            group.add_argument(_flag(f.name), dest=f.name, **kw,
                               help=f"{f.metadata['help']} (default: {default!r})".replace("%", "%%"))
            if f.name in old_names:  # the old spelling, its own dest: both given differently is an error
                group.add_argument(_flag(old_names[f.name]), dest=old_names[f.name], **kw,
                                   help=f"old name of {_flag(f.name)}")
    return p


def load_run_config(path: str) -> dict[str, dict]:
    """{"train": {...}, "model": {...}} from a JSON/YAML run config, old names replaced by the
    fields' (``seqmatch.config.ALIASES``); ValueError naming the file and the offending key for
    anything else."""
    from seqmatch.config import ALIASES
    from seqmatch.model import ModelConfig
    from seqmatch.options import read_config_file

    cfg = read_config_file(path)
    if set(cfg) - {"train", "model"}:
        raise ValueError(f"--config {path}: expected a mapping with sections 'train' and 'model', got {sorted(cfg)}")
    for section, cls, extra in (("train", SequenceMatchConfig, set(SCRIPT_FIELDS) | set(ALIASES)),
                                ("model", ModelConfig, set())):
        names = {f.name for f in dataclasses.fields(cls) if f.name not in API_ONLY} | extra
        unknown = sorted(set(cfg.get(section) or {}) - names)
        if unknown:
            raise ValueError(f"--config {path}: unknown {section} key(s) {', '.join(unknown)} "
                             f"(not {cls.__name__} fields; see python -m seqmatch.train --help)")
    return {"train": resolve_aliases(cfg.get("train") or {}, f"--config {path}: train"),
            "model": dict(cfg.get("model") or {})}


def from_run_config(values: dict) -> SequenceMatchTrainer:
    """The trainer of a run config ``{"train": {...}, "model": {...}}`` (``load_run_config``): the
    train section's SequenceMatchConfig fields, its data files and tokenizer (``SCRIPT_FIELDS``),
    the model section's ModelConfig."""
    from seqmatch.model import ModelConfig

    train = dict(values["train"])
    script = {k: train.pop(k, "") for k in SCRIPT_FIELDS}
    if not script["train_file"]:
        raise ValueError("train_file (flag --train-file): a JSONL file of training rows is required")
    rows = load_rows(script["train_file"])
    if train.get("noise") == "ground_truth" and float(train.get("eta", 0)) > 0:
        require_bases(rows, script["train_file"])
    eval_rows = load_rows(script["eval_file"]) if script["eval_file"] else None
    return SequenceMatchTrainer(model=ModelConfig(**values["model"]), args=SequenceMatchConfig(**train),
                                train_dataset=rows, eval_dataset=eval_rows,
                                processing_class=script["tokenizer"] or None)


def main(argv=None) -> int:
    from seqmatch.model import ModelConfig

    args = vars(build_parser().parse_args(argv))
    mnames = {f.name for f in dataclasses.fields(ModelConfig)}
    try:
        values = load_run_config(args.pop("config")) if args.get("config") else {"train": {}, "model": {}}
        args.pop("config", None)
        flags = resolve_aliases({k: v for k, v in args.items() if k not in mnames}, "flags")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    values["train"].update(flags)  # flags override the file
    values["model"].update({k: v for k, v in args.items() if k in mnames})
    try:
        trainer = from_run_config(values)
    except OSError as e:
        print(f"error: {e.filename}: {e.strerror} (flag --train-file / --eval-file)", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = trainer.cfg
    out = Path(cfg.output_dir)
    # (a stop_after_warmup job on a finished run goes through train(): it must write bc_warmup.json)
    if not cfg.stop_after_warmup and (out / "summary.json").exists() and (out / "model").exists():
        state = checkpoint.read_state(out / checkpoint.CHECKPOINT) or {}
        if state.get("step") == cfg.max_steps and not checkpoint.stale(state, trainer.identity()):
            if trainer.accel.is_main_process:
                print(f"{cfg.output_dir}: already complete ({cfg.max_steps} steps)")
            return 0
    try:
        summary = trainer.train()
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
