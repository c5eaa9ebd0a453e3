"""``SequenceMatchConfig``: every setting of a training run (TRL-style config dataclass).

    from seqmatch import SequenceMatchConfig
    args = SequenceMatchConfig(output_dir="out", method="sm", max_steps=2000, alpha=0.01, eta=0.001)

Generic fields carry ``transformers.TrainingArguments``' names (``output_dir``, ``max_steps``,
``learning_rate``, ``per_device_train_batch_size``, ``gradient_accumulation_steps``,
``logging_steps``, ``save_steps``, ``seed``, ``report_to``, ...); the method's fields carry the
paper's symbols (``alpha``, ``gamma``, ``eta``, ``divergence``, ``beta_final``, ...). It is not a
``TrainingArguments`` subclass: every field here is honoured, and only those.

The names of seqmatch < 0.2 (``steps``, ``lr``, ``out_dir``, ``batch_size``, ``grad_accum``,
``log_every``, ``checkpoint_every``) stay accepted wherever a field is given: this constructor,
the ``seqmatch.train`` flags, its ``--config`` file and the workflow's config.yaml; both names of
one field with different values are an error (``resolve_aliases``). Torch-free: the workflow
imports it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass

from seqmatch.options import config_field as _field
from seqmatch.runs import DIVERGENCES, INITIAL_VALUE_ESTIMATORS, METHODS, NOISES

# old name -> field name (seqmatch < 0.2)
ALIASES = {
    "out_dir": "output_dir",
    "steps": "max_steps",
    "lr": "learning_rate",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "log_every": "logging_steps",
    "checkpoint_every": "save_steps",
}
REPORT_TO = ("none", "tensorboard")


def resolve_aliases(values: dict, where: str = "SequenceMatchConfig") -> dict:
    """``values`` with every old name replaced by its field name, in place in the order; ValueError
    naming both when both are given with different values."""
    out: dict = {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if name in out and out[name] != value:
            old = next(o for o, n in ALIASES.items() if n == name and o in values)
            raise ValueError(f"{where}: {old}={values[old]!r} and {name}={values[name]!r}: {old} is the old name "
                             f"of {name}; give one of them")
        out[name] = value
    return out


def _accepts_aliases(cls):
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **resolve_aliases(kwargs, cls.__name__))

    cls.__init__ = __init__
    return cls


@_accepts_aliases
@dataclass
class SequenceMatchConfig:
    """Everything a SequenceMatch training run needs besides the model, the tokenizer and the data
    (``seqmatch.SequenceMatchTrainer``). ``validate()`` checks every field."""

    method: str = _field("mle", "mle | bc | sm | ulk: maximum likelihood, behavioural cloning with <bkspc> "
                                "(\"MLE + <bkspc>\"), SequenceMatch, MLE + unlikelihood")
    output_dir: str = _field("", "run directory: checkpoint/, model/, train_log.jsonl, summary.json")
    seed: int = _field(0, "seed of the data order, noise, rollouts and initialisation")
    # optimisation
    max_steps: int = _field(1000, "optimizer steps")
    per_device_train_batch_size: int = _field(32, "data rows per optimizer step and process (paper: 32)")
    gradient_accumulation_steps: int = _field(
        1, "micro-batches per optimizer step; per_device_train_batch_size must divide evenly")
    learning_rate: float = _field(3e-4, "peak learning rate (AdamW)")
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
        "bc_warmup_steps whenever 0 < bc_warmup_steps < max_steps. Empty: train the warm-up here")
    stop_after_warmup: bool = _field(
        False, "bc: stop once the bc_warmup/ snapshot is written, with a checkpoint there (the workflow's "
        "bc_warmup job: SM runs start from the snapshot while the BC run resumes from the checkpoint)")
    beta_final: float = _field(0.2, "final weight of L_BC in beta * L_BC + (1 - beta) * L_SM")
    beta_anneal_steps: int = _field(2000, "beta goes 1 -> beta_final linearly over these steps")
    # replay buffer and rollouts (App. E)
    replay_capacity: int = _field(1000, "FIFO capacity (sequences)")
    replay_reuse: float = _field(8.0, "times each sequence is used in training, on average")
    gen_batch_size: int = _field(32, "rollouts generated per sampling round")
    model_rows: int = _field(0, "replay rows per optimizer step; 0 = same as per_device_train_batch_size")
    max_prompt_len: int = _field(256, "text rollouts: prompt length uniform in 1..max_prompt_len")
    max_new_tokens: int = _field(512, "rollout length limit (actions); also the eval set's")
    temperature: float = _field(1.0, "rollout (and eval) sampling temperature")
    top_p: float = _field(1.0, "rollout (and eval) nucleus-sampling mass (1: off)")
    # unlikelihood (ulk)
    ul_weight: float = _field(1.0, "weight of the unlikelihood term added to MLE")
    # evaluation (an eval_dataset given to the trainer)
    eval_steps: int = _field(
        0, "steps between evaluations on the eval_dataset (eval_loss, and eval_accuracy for prompted rows); "
        "0: once, at the end of training")
    per_device_eval_batch_size: int = _field(32, "eval rows per forward pass / sampling batch")
    # logging and checkpoints
    logging_steps: int = _field(1, "steps between log lines (train_log.jsonl, callbacks' on_log, report_to)")
    report_to: str = _field(
        "none", "none | tensorboard: where on_log's scalars go besides train_log.jsonl (TensorBoard: event "
        "files under output_dir/runs/, or $TENSORBOARD_LOGGING_DIR; transformers' TensorBoardCallback)")
    save_steps: int = _field(100, "steps between checkpoints (0: only at the end / on SIGTERM)")
    max_nonfinite: int = _field(10, "skipped non-finite losses tolerated before aborting")
    grad_diagnostics_every: int = _field(
        0, "SM steps between gradient diagnostics in the log: the norm of the gradient of each loss part (BC, "
        "SM, chi2_mix regulariser, the plug-in residue) and its cosine with the BC gradient; one extra forward "
        "and four backward passes each (single process only); 0 disables")
    # the model, when SequenceMatchTrainer gets a path or hub id
    model_init_kwargs: dict | None = _field(
        None, "seqmatch.model.ModelConfig fields (lora_r, torch_dtype, attn_implementation, offset_head, ...) "
        "used when the trainer's model is a path / hub id or a transformers model object, as TRL's "
        "model_init_kwargs")

    def validate(self) -> None:
        """One place for every check; raises ValueError naming the field."""

        def bad(name, expected):
            raise ValueError(f"SequenceMatchConfig: {name}={getattr(self, name)!r}: expected {expected}")

        if self.method not in METHODS:
            bad("method", f"one of {METHODS}")
        if self.stop_after_warmup and not (self.method == "bc" and 0 < self.bc_warmup_steps < self.max_steps):
            bad("stop_after_warmup", "false unless method is bc and 0 < bc_warmup_steps < max_steps")
        if self.noise not in NOISES:
            bad("noise", f"one of {NOISES}")
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
        for name in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "max_len",
                     "replay_capacity", "gen_batch_size", "max_prompt_len", "max_new_tokens", "logging_steps",
                     "per_device_eval_batch_size"):
            if getattr(self, name) < 1:
                bad(name, "an integer >= 1")
        for name in ("warmup_steps", "bc_warmup_steps", "beta_anneal_steps", "model_rows", "grad_diagnostics_every",
                     "save_steps", "max_nonfinite", "max_grad_norm", "weight_decay", "logit_bound",
                     "num_processes", "eval_steps"):
            if getattr(self, name) < 0:
                bad(name, ">= 0")
        if self.per_device_train_batch_size % self.gradient_accumulation_steps:
            bad("per_device_train_batch_size", f"a multiple of gradient_accumulation_steps="
                f"{self.gradient_accumulation_steps}")
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
        if self.report_to not in REPORT_TO:
            bad("report_to", " | ".join(REPORT_TO))
        if not self.output_dir:
            bad("output_dir", "a directory path")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json_string(self) -> str:
        """As ``TrainingArguments.to_json_string`` (TensorBoard's ``args`` text)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
