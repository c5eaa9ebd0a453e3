"""Runs: their names, the experiment grid, each run's config, what makes two runs the same run,
and the checks of the workflow config that name the offending key.

Shared by the Snakemake workflow (workflow/rules/common.smk builds a ``Grid`` from the validated
config) and by ``seqmatch.train`` (run identity, warm-start checks). Torch-free, so the Snakefile
can import it while it is parsed.

A training run is one directory ``RUN`` named by its grid coordinates (task, method, noise, eta,
divergence, seed). Its config is a JSON file with two sections, ``train`` (``SequenceMatchConfig``
fields, ``train_file`` and ``tokenizer``) and ``model`` (``ModelConfig`` fields), under the same
names as config.yaml's ``train:`` and ``model:`` keys: ``python -m seqmatch.train --config FILE``.
"""

from __future__ import annotations

import itertools
import os
import re

import numpy as np

from seqmatch.data.arithmetic import ARITHMETIC_TASKS
from seqmatch.data.sources import local_data_files, looks_local, pretrained_problem

# A task is a tasks.<name> block of the config with a kind: qa (question -> answer, scored by
# accuracy; prompt "{question} Solution:", completion " {answer}"), text (free text, MAUVE and
# perplexity) or translation (en -> fr, BLEU). The built-in tasks are presets: the arithmetic ones
# (seqmatch.data.arithmetic.ARITHMETIC_TASKS, the only names the generator source makes) are qa,
# text and translation their own kinds; a task of any other name declares its kind.
KINDS = ("qa", "text", "translation")
ARITH_TASKS = tuple(ARITHMETIC_TASKS)
TASKS = ARITH_TASKS + ("text", "translation")  # the built-in tasks
PRESET_KINDS = {**{task: "qa" for task in ARITH_TASKS}, "text": "text", "translation": "translation"}
TASK_NAME = r"[A-Za-z][A-Za-z0-9_]*"  # a path part and a wildcard value
# resources/tokenizers/pretrained*: the pretrained tokenizers' directories, no task's BPE one
RESERVED_TASK_NAMES = ("pretrained",)
# answer_normalization of a qa task's accuracy (seqmatch.metrics.extract_answer)
ANSWER_NORMALIZATIONS = ("numeric", "strip", "exact")
METHODS = ("mle", "bc", "sm", "ulk")
NOISES = ("none", "random", "ground_truth")
DIVERGENCES = ("chi2", "chi2_mix", "kl", "js")
# estimators of the model rows' value term of eq. 4 (seqmatch.losses.sequence_match_loss, initial_value)
INITIAL_VALUE_ESTIMATORS = ("data", "plugin")

RUN_ID = "{task}/{method}-{noise}-eta{eta}-{divergence}/seed{seed}"
RUN = "resources/runs/" + RUN_ID
# written by a BC run stopped after its warm-up (SequenceMatchConfig.stop_after_warmup), beside bc_warmup/
WARMUP_DONE = "bc_warmup.json"


def task_kind(config: dict, task: str) -> str | None:
    """A task's kind: its block's ``kind``, else the built-in task's (None for neither)."""
    block = (config.get("tasks") or {}).get(task)
    kind = block.get("kind") if isinstance(block, dict) else None
    return kind or PRESET_KINDS.get(task)


def has_base(config: dict, task: str) -> bool:
    """Whether a task's rows have a base, the alphabet of ground-truth noise (digits 0..b-1): the
    arithmetic tasks (the question's base, 10 unless "In base b, ...") and a qa task whose data
    set ``base``."""
    data = ((config.get("tasks") or {}).get(task) or {}).get("data") or {}
    return task in ARITH_TASKS or (task_kind(config, task) == "qa" and data.get("base") is not None)


# run config train keys set per run (grid coordinates, file layout; train_file and tokenizer are
# seqmatch.train's data flags), not config.yaml train keys; SequenceMatchConfig fields of the Python
# API only (the run config's model section holds the model); and train keys of config.yaml that
# are the workflow's, not SequenceMatchConfig's
RUN_FIELDS = ("method", "train_file", "tokenizer", "output_dir", "seed", "noise", "eta", "warm_start",
              "stop_after_warmup")
API_ONLY = ("model_init_kwargs", "eval_steps", "per_device_eval_batch_size")
# (num_processes is also a SequenceMatchConfig field: a run config carries it when > 1, see run_config)
WORKFLOW_ONLY = ("num_processes", "launch_device")
# files of a model directory that hold weights (not read by its tokenizer)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")
# ModelConfig fields that only apply to a model built from scratch
FROM_SCRATCH_FIELDS = ("arch", "n_layer", "n_head", "d_model", "d_ff", "max_position_embeddings")

# ------------------------------------------------------------------------------ run identity

# SequenceMatchConfig fields that do not change what is trained (where it is written, how often it
# logs, evaluates or saves; the model is the identity's own part)
# (num_processes: the identity holds the count the run trained on, whatever the config said)
NOT_IDENTITY = ("output_dir", "save_steps", "logging_steps", "max_nonfinite", "warm_start", "stop_after_warmup",
                "grad_diagnostics_every", "num_processes", "report_to", "eval_steps", "per_device_eval_batch_size",
                "model_init_kwargs")
# ModelConfig fields that do not change what is trained (new_tokenizer permits a pairing, the
# tokenizer itself is the train identity's)
NOT_IDENTITY_MODEL = ("new_tokenizer",)
# what an SM run shares with the BC run it warm-starts from: its first bc_warmup_steps are then
# exactly that BC run's (beta = 1, no replay rows), besides the model, the data and the process count
WARM_START_KEYS = ("seed", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                   "learning_rate", "weight_decay", "warmup_steps", "max_grad_norm", "mixed_precision", "max_len",
                   "mask_prompt", "noise", "eta", "bc_warmup_steps")


# SequenceMatchConfig fields that only some methods read (the others read every field): MLE and ULK
# runs sample nothing and have no warm-up, BC runs write their warm-up snapshot at bc_warmup_steps. A
# run's config and identity hold only the fields its method reads, so changing an SM value such as
# train.alpha retrains the SM runs alone.
SM_ONLY = ("alpha", "gamma", "divergence", "logit_bound", "initial_value", "beta_final", "beta_anneal_steps",
           "replay_capacity", "replay_reuse", "gen_batch_size", "model_rows", "max_prompt_len", "max_new_tokens",
           "temperature", "top_p", "grad_diagnostics_every")
METHOD_ONLY = {**{key: ("sm",) for key in SM_ONLY}, "bc_warmup_steps": ("bc", "sm"), "ul_weight": ("ulk",)}


def reads(method: str | None, key: str) -> bool:
    """Whether a run of ``method`` reads SequenceMatchConfig field ``key`` (None: any method's, all)."""
    return method is None or method in METHOD_ONLY.get(key, METHODS)


# ---- study settings: named train-key overrides (experiments.<study>.settings), part of a run's
# directory name as "<divergence>+<setting>". Keys that shape only an SM run's SM phase: a BC or MLE
# run trains the same whatever their values (a BC run's bc_warmup_steps only places its snapshot),
# so a setting that changes only these shares the BC and MLE runs of the defaults, which its SM runs
# are paired with
SM_PHASE_KEYS = SM_ONLY + ("bc_warmup_steps",)
SETTING_SEP = "+"
SETTING_NAME = r"[A-Za-z0-9_.]+"


def split_divergence(field: str) -> tuple[str, str | None]:
    """A run directory's divergence field -> (divergence, setting or None): 'chi2_mix+alpha1' ->
    ('chi2_mix', 'alpha1'); 'none' -> ('none', None)."""
    div, sep, setting = field.partition(SETTING_SEP)
    return div, (setting if sep else None)


def identity(train: dict, model: dict, data_sha256: str | None, tokenizer_sha256: str | None,
             num_processes: int) -> dict:
    """What makes two runs the same run: the SequenceMatchConfig fields that shape the result (those
    its method reads), the model config, the training rows' and the tokenizer's content and the
    process count. A checkpoint resumes only its own run; an SM run warm-starts only from its own BC
    run's snapshot. (An identity saved before fields were left out holds more of them; only the
    fields of the current identity are compared, ``identity_diff``.)"""
    method = train.get("method")
    return {"train": {k: v for k, v in train.items() if k not in NOT_IDENTITY and reads(method, k)},
            "model": {k: v for k, v in model.items() if k not in NOT_IDENTITY_MODEL},
            "data_sha256": data_sha256, "tokenizer_sha256": tokenizer_sha256, "num_processes": int(num_processes)}


def identity_diff(saved: dict, now: dict, train_keys, vs: str) -> list[str]:
    """'part.key: saved<vs>now' for every compared field that differs ([] if none); a field the
    saved identity lacks differs (its value shows as None)."""
    diff = [f"train.{k}: {saved['train'].get(k)!r}{vs}{now['train'][k]!r}"
            for k in train_keys if saved["train"].get(k) != now["train"][k]]
    diff += [f"model.{k}: {saved['model'].get(k)!r}{vs}{v!r}"
             for k, v in now["model"].items() if saved["model"].get(k) != v]
    if saved.get("data_sha256") != now["data_sha256"]:
        diff.append("the training data differ")
    if saved.get("tokenizer_sha256") != now["tokenizer_sha256"]:
        diff.append("the tokenizers differ")
    if saved.get("num_processes") != now["num_processes"]:
        diff.append(f"num_processes: {saved.get('num_processes')}{vs}{now['num_processes']}")
    return diff


def warm_startable(train: dict) -> bool:
    """An SM run can start from a BC run's warm-up snapshot: BC runs write it at step
    bc_warmup_steps whenever 0 < bc_warmup_steps < steps (and the workflow's bc_warmup job
    trains those steps once)."""
    return train.get("method", "sm") == "sm" and 0 < int(train["bc_warmup_steps"]) < int(train["max_steps"])


# ------------------------------------------------------------------------------ the grid


def fmt_eta(eta) -> str:
    """0.0 -> '0', 0.02 -> '0.02', 1e-4 -> '0.0001' (no exponent: eta is part of a path)."""
    return np.format_float_positional(float(eta), trim="-")


def _unique(items):
    return list(dict.fromkeys(items))


# Table 2 rows: (paper's row name, method, decoding)
TABLE2_ROWS = (
    ("MLE", "mle", "sample"),
    ("MLE + C.S.", "mle", "contrastive"),
    ("MLE + ULK", "ulk", "sample"),
    ("MLE + <bkspc>", "bc", "sample"),
    ("SequenceMatch", "sm", "sample"),
)
# ---- grid tables: an experiments.<name> block naming a task declares a grid of runs (methods x
# noise types x etas x divergences x seeds) and the script that tabulates them (rule grid_table);
# Tables 5-7 are grid tables with the default script, accuracy tables.
DEFAULT_TABLE_SCRIPT = "workflow/scripts/accuracy_table.py"
DEFAULT_TABLE_METHODS = ("mle", "bc", "sm")
# the per-run files a grid table can read (run_files) and the kinds of task whose runs have them
# (mistakes.json: add_or_sub_in_base's runs alone, Table 1's mistake recovery)
RUN_FILES = {"summary.json": KINDS, "eval.json": ("qa", "translation"), "eval_sample.json": ("text",),
             "eval_contrastive.json": ("text",), "mistakes.json": ()}
MISTAKES_TASK = "add_or_sub_in_base"
# the metric of an accuracy table, per kind of task (BLEU for translation)
ACCURACY_METRICS = {"qa": "accuracy", "translation": "bleu"}


def run_files(config: dict, task: str) -> list[str]:
    """The per-run files the runs of ``task`` have (what a grid table's run_files may name)."""
    kind = task_kind(config, task)
    return [f for f, kinds in RUN_FILES.items() if kind in kinds or (f == "mistakes.json" and task == MISTAKES_TASK)]
# the paper's accuracy tables and their tasks (the scorecard compares them with the paper's numbers)
PAPER_ACCURACY_TABLES = {"table5": "translation", "table6": "mul", "table7": "list_prime_factors"}
# results/<name>.* of the other artifacts: names a grid table cannot take
ARTIFACT_NAMES = ("figure1", "figure2", "figure3", "table1", "table1_recovery", "table2", "table3", "table4",
                  "table8", "ablation_divergence", "scorecard", "summary", "report")


def grid_noises_etas(exp: dict) -> tuple[list, list]:
    """A grid table's noise types ([] if it names none) and noise levels ([0.0] if it names none)."""
    noises = exp.get("noise_types") or ([exp["noise"]] if "noise" in exp else [])
    return noises, exp.get("etas") or [exp.get("eta", 0.0)]


def layered(sources: list[dict], section: str, task: str) -> dict:
    """The values of ``section`` (train or model) for ``task`` from the config's sources in the
    order they were merged (config.yaml, then each --configfile, then --config): each source's
    global section, then its tasks.<task>.<section> on top. So a key a later source sets wins at
    any level: a user's global ``train: {steps: 300}`` beats config.yaml's tasks.<task>.train.steps,
    and within one source the task's value beats the global one."""
    out: dict = {}
    for src in sources:
        out.update(src.get(section) or {})
        out.update((((src.get("tasks") or {}).get(task) or {}).get(section)) or {})
    return out


class Grid:
    """The runs each artifact needs, from a validated workflow config (config.yaml + profile).
    ``sources``: the config's layers in merge order (``layered``); None: the config alone."""

    def __init__(self, config: dict, sources: list[dict] | None = None, source_names: list[str] | None = None):
        self.config = config
        self.sources = [config] if sources is None else sources
        self.source_names = source_names  # None: one config, nothing to tell apart
        self.exp = config["experiments"]

    def origin(self, section: str, task: str, key: str) -> str:
        """Where a task's effective train/model value comes from (``layered``): ' (from FILE:
        KEY)', or '' when no source sets it (the code's default) or the sources have no names."""
        for name, src in zip(reversed(self.source_names or []), reversed(self.sources)):
            if key in ((((src.get("tasks") or {}).get(task) or {}).get(section)) or {}):
                return f" (from {name}: tasks.{task}.{section}.{key})"
            if key in (src.get(section) or {}):
                return f" (from {name}: {section}.{key})"
        return ""

    # ---- tasks and their kinds
    def tasks(self) -> list[str]:
        return list(self.config["tasks"])

    def kind(self, task: str) -> str:
        return task_kind(self.config, task)

    def tasks_of_kind(self, *kinds: str) -> list[str]:
        return [task for task in self.tasks() if self.kind(task) in kinds]

    # ---- per-task settings
    def _train_keys(self, task: str) -> dict:
        """The train keys of a task (``layered``; workflow-only keys included)."""
        return layered(self.sources, "train", task)

    def task_train(self, task: str) -> dict:
        """SequenceMatchConfig values of a task: train, then tasks.<task>.train, source by source (``layered``)."""
        merged = self._train_keys(task)
        for key in WORKFLOW_ONLY:
            merged.pop(key, None)
        return merged

    def num_processes(self, task: str) -> int:
        return int(self._train_keys(task).get("num_processes", 1))

    def launch_device(self, task: str) -> str:
        """How a multi-process job runs: auto (CUDA where the job finds it, else CPU), cpu or cuda
        (``seqmatch.launch``)."""
        return str(self._train_keys(task).get("launch_device", "auto"))

    def task_model(self, task: str) -> dict:
        """ModelConfig values of a task: model, then tasks.<task>.model, source by source
        (``layered``); the from-scratch sizes are dropped when a pretrained model is named (they do
        not apply)."""
        merged = layered(self.sources, "model", task)
        if merged.get("name_or_path"):
            for key in FROM_SCRATCH_FIELDS:
                merged.pop(key, None)
        return merged

    def data_dir(self, task: str) -> str:
        return f"resources/data/{task}"

    def pretrained_tokenizer(self, task: str) -> str | None:
        """The hub id or directory of a task's pretrained tokenizer: tokenizer.name_or_path, else
        its pretrained model's own (its name_or_path) unless model.new_tokenizer; None: a BPE
        tokenizer trained on the task's data (a model from scratch, or new_tokenizer)."""
        if self.config["tokenizer"].get("name_or_path"):
            return self.config["tokenizer"]["name_or_path"]
        model = self.task_model(task)
        return None if model.get("new_tokenizer") else model.get("name_or_path")

    def tokenizer_dir(self, task: str) -> str:
        """A BPE tokenizer per task (resources/tokenizers/<task>); a pretrained one saved once with
        <bkspc> added: resources/tokenizers/pretrained for the global tokenizer.name_or_path or
        model.name_or_path, pretrained-<task> for a task whose model is another."""
        name = self.pretrained_tokenizer(task)
        if name is None:
            return f"resources/tokenizers/{task}"
        tok = self.config["tokenizer"].get("name_or_path")
        shared = tok or (None if self.config["model"].get("new_tokenizer") else self.config["model"].get("name_or_path"))
        return "resources/tokenizers/" + ("pretrained" if name == shared else f"pretrained-{task}")

    def pretrained_tokenizers(self) -> dict[str, str]:
        """Each pretrained tokenizer directory (under resources/tokenizers/) and what it holds."""
        out = {}
        for task in self.tasks():
            name = self.pretrained_tokenizer(task)
            if name is not None:
                out.setdefault(self.tokenizer_dir(task).rsplit("/", 1)[1], name)
        return out

    def bpe_tasks(self) -> list[str]:
        """The tasks whose tokenizer is a BPE tokenizer trained on their data."""
        return [task for task in self.tasks() if self.pretrained_tokenizer(task) is None]

    # ---- study settings
    def settings(self) -> dict[str, dict]:
        """Every named setting of the studies (experiments.<name>.settings): name -> the train
        keys it overrides (``semantic_errors`` checks that a name means one thing)."""
        out = {}
        for exp in self.exp.values():
            if isinstance(exp, dict):
                out.update(exp.get("settings") or {})
        return out

    def setting_overrides(self, setting: str | None, method: str, task: str) -> dict:
        """What ``setting`` changes in a run of ``method`` on ``task``: its keys whose values differ
        from the task's, all of them for SM, for the other methods only those that shape their
        training (not ``SM_PHASE_KEYS``). A setting may spell out every key it studies: where it
        equals the defaults it names the defaults' runs; when the defaults move, a setting spelling
        out the old values keeps its runs' content (under the name ``run_setting`` gives them)."""
        base = self.task_train(task)
        over = {k: v for k, v in (self.settings()[setting] if setting else {}).items() if base.get(k) != v}
        return over if method == "sm" else {k: v for k, v in over.items() if k not in SM_PHASE_KEYS}

    def run_setting(self, setting: str | None, method: str, task: str) -> str | None:
        """The setting that names ``setting``'s run of ``method``: None where it changes nothing
        of that run (the defaults' run), else the first setting, in the order the experiments and
        their settings are written, that changes the run the same way. Equal runs share one
        directory: the MLE and BC runs of every setting that differs from the defaults in
        max_steps alone, say, are trained once, not once per setting."""
        over = self.setting_overrides(setting, method, task) if setting else {}
        if not over:
            return None
        return next(s for s in self.settings() if self.setting_overrides(s, method, task) == over)

    # ---- run names
    def canonical(self, task, method, seed, noise="none", eta=0.0, divergence=None, setting=None) -> dict:
        """The canonical coordinates of a run: MLE/ULK carry no noise; eta 0 and noise 'none' are
        the same run; only SM has a divergence; a study setting is part of the name only where
        it changes what the run trains (``setting_overrides``). Equal runs share one directory
        (trained once)."""
        if method in ("mle", "ulk") or float(eta) == 0.0 or noise == "none":
            noise, eta = "none", 0.0
        if method == "sm":
            divergence = divergence or self.task_train(task).get("divergence", "chi2_mix")
        else:
            divergence = "none"
        setting = self.run_setting(setting, method, task)
        if setting:
            divergence = f"{divergence}{SETTING_SEP}{setting}"
        return dict(task=task, method=method, noise=noise, eta=fmt_eta(eta), divergence=divergence,
                    seed=int(seed))

    def run_dir(self, task, method, seed, noise="none", eta=0.0, divergence=None, setting=None) -> str:
        return RUN.format(**self.canonical(task, method, seed, noise, eta, divergence, setting))

    def run_train(self, task, method, divergence_field="none") -> dict:
        """The TrainConfig values of a run: the task's, with its setting's overrides on top. A BC
        run of a setting (one that changes what BC trains, ``run_setting``) writes its warm-up
        snapshot at that setting's bc_warmup_steps, where the setting's SM runs start."""
        _, setting = split_divergence(divergence_field)
        over = self.setting_overrides(setting, method, task)
        train = {**self.task_train(task), **over}
        if method == "bc" and over:
            train["bc_warmup_steps"] = self.settings()[setting].get("bc_warmup_steps", train["bc_warmup_steps"])
        return train

    # ---- the runs behind each artifact
    def figure3_runs(self) -> list[dict]:
        """One entry per (panel, method, eta, seed): MLE is repeated in both panels at eta 0."""
        exp, task = self.exp["figure3"], "add_or_sub_in_base"
        runs = []
        for panel in exp["noise_types"]:
            for seed in exp["seeds"]:
                runs.append(dict(noise_type=panel, method="mle", eta=0.0, seed=seed,
                                 dir=self.run_dir(task, "mle", seed)))
                runs += [dict(noise_type=panel, method=method, eta=float(eta), seed=seed,
                              dir=self.run_dir(task, method, seed, panel, eta))
                         for method in ("bc", "sm") for eta in exp["etas"]]
        return runs

    def table1_candidates(self) -> list[str]:
        """Table 1 uses the best SM model of Figure 3 (by test accuracy; ties: first)."""
        return _unique(r["dir"] for r in self.figure3_runs() if r["method"] == "sm")

    def table1_recovery_runs(self) -> list[dict]:
        """Every distinct training run of Figure 3, once (MLE is in both panels there; here it is
        one row with noise 'none'): the runs whose mistake recovery Table 1 compares."""
        runs = {}
        for r in self.figure3_runs():
            noise = "none" if r["method"] == "mle" or r["eta"] == 0.0 else r["noise_type"]
            runs.setdefault(r["dir"], dict(r, noise_type=noise))
        return list(runs.values())

    def grid_tables(self) -> list[str]:
        """The experiments that are grid tables: those naming a task and no study settings
        (results/<name>.csv, in the default target)."""
        return [name for name, exp in self.exp.items() if "task" in exp and "settings" not in exp]

    def studies(self) -> list[str]:
        """The experiments that are studies: a task and named settings (results/<name>.{csv,png},
        built on request: ``snakemake --cores all results/<name>.csv``, not in the default target)."""
        return [name for name, exp in self.exp.items() if "task" in exp and "settings" in exp]

    def default_setting(self, name: str) -> str | None:
        """The study's setting that is the task's defaults (its SM runs are Figure 3's and the
        other artifacts'), or None: what the outcome's test comparison is of."""
        task = self.exp[name]["task"]
        return next((s for s in self.exp[name]["settings"] if not self.setting_overrides(s, "sm", task)), None)

    def study_runs(self, name: str) -> list[dict]:
        """A study's runs: methods x noise types x etas x settings x seeds of its task, each with
        its coordinates and directory. Runs a setting does not change (MLE and BC runs of a setting
        that changes only SM-phase keys, ``setting_overrides``) are the defaults' runs, so every SM
        run is paired with the BC and MLE runs it would be compared with anyway."""
        exp = self.exp[name]
        task = exp["task"]
        noises, etas = grid_noises_etas(exp)
        rows = []
        for method in exp.get("methods", DEFAULT_TABLE_METHODS):
            for noise, eta, setting, seed in itertools.product(noises or ["none"], etas, exp["settings"],
                                                               exp["seeds"]):
                run = self.canonical(task, method, seed, noise, eta, None, setting)
                rows.append(dict(task=task, method=method, noise=noise, eta=float(eta), setting=setting,
                                 seed=int(seed), dir=RUN.format(**run)))
        return rows

    def accuracy_tables(self) -> list[str]:
        """The grid tables with the default script: Tables 5-7 and any block like them."""
        return [name for name in self.grid_tables() if "script" not in self.exp[name]]

    def grid_table_runs(self, name: str) -> list[dict]:
        """A grid table's runs, one row per point of methods x noise types x etas x divergences x
        seeds, each with its coordinates as the block gives them and its run directory. MLE and
        ULK runs carry no noise: their rows repeat one run per seed under every noise type and eta
        (as in the paper's tables); divergences apply to SM rows only."""
        exp = self.exp[name]
        task = exp["task"]
        noises, etas = grid_noises_etas(exp)
        rows = []
        for method in exp.get("methods", DEFAULT_TABLE_METHODS):
            divs = (exp.get("divergences") or [None]) if method == "sm" else [None]
            for noise, eta, div, seed in itertools.product(noises or ["none"], etas, divs, exp["seeds"]):
                run = self.canonical(task, method, seed, noise, eta, div)
                rows.append(dict(task=task, method=method, noise=noise, eta=float(eta),
                                 divergence=run["divergence"], seed=int(seed), dir=RUN.format(**run)))
        return rows

    def grid_table_inputs(self, name: str) -> list[str]:
        """The per-run files a grid table reads: run_files (default: the task's evaluation) of
        every run directory."""
        files = self.exp[name].get("run_files") or ["eval_sample.json" if self.kind(self.exp[name]["task"]) == "text"
                                                   else "eval.json"]
        return list(dict.fromkeys(f"{r['dir']}/{f}" for r in self.grid_table_runs(name) for f in files))

    def grid_table_script(self, name: str) -> str:
        """The grid table's script, relative to the repository root (or absolute)."""
        return self.exp[name].get("script", DEFAULT_TABLE_SCRIPT)

    def ablation_runs(self) -> list[dict]:
        exp = self.exp["ablation_divergence"]
        return [dict(divergence=div, noise_type=noise, eta=float(exp["eta"]), seed=seed,
                     dir=self.run_dir("add_or_sub_in_base", "sm", seed, noise, exp["eta"], div))
                for div in exp["divergences"] for noise in exp["noise_types"] for seed in exp["seeds"]]

    def text_run(self, method: str) -> str:
        exp = self.exp["table2"]
        return self.run_dir("text", method, exp["seed"], exp["noise"], exp["eta"])

    def table2_runs(self) -> list[dict]:
        return [dict(row=row, method=m, decoding=d, eval=f"{self.text_run(m)}/eval_{d}.json")
                for row, m, d in TABLE2_ROWS]

    def timing_runs(self, name: str) -> list[dict]:
        """Tables 3 (text) and 4 (arithmetic): the MLE and SM runs whose summary.json is timed."""
        if name == "table3":
            return [dict(procedure="MLE", dir=self.text_run("mle")),
                    dict(procedure="SequenceMatch", dir=self.text_run("sm"))]
        exp, task = self.exp["table4"], "add_or_sub_in_base"
        return [dict(procedure="MLE", dir=self.run_dir(task, "mle", exp["seed"])),
                dict(procedure="SequenceMatch", dir=self.run_dir(task, "sm", exp["seed"], exp["noise"], exp["eta"]))]

    def curve_artifacts(self) -> list[str]:
        """The artifacts built from training runs: each gets the training curves of its runs."""
        return ["figure3", "table1_recovery", "table2", "table3", "table4", "ablation_divergence",
                *self.grid_tables()]

    def curve_runs(self, artifact: str) -> list[str]:
        """The run directories behind ``artifact`` (``curve_artifacts``), each once."""
        if artifact == "figure3":
            rows = self.figure3_runs()
        elif artifact == "table1_recovery":
            rows = self.table1_recovery_runs()
        elif artifact == "table2":
            rows = [dict(dir=self.text_run(m)) for _, m, _ in TABLE2_ROWS]
        elif artifact in ("table3", "table4"):
            rows = self.timing_runs(artifact)
        elif artifact == "ablation_divergence":
            rows = self.ablation_runs()
        else:
            rows = self.grid_table_runs(artifact)
        return _unique(r["dir"] for r in rows)

    # ---- one run's config
    def warmup_dir(self, task, method, seed, noise, eta, divergence_field="none") -> str | None:
        """The BC run whose first bc_warmup_steps a run starts from: for an SM run, the BC run of
        its task, seed, noise and eta; for a BC run, itself. That BC run's bc_warmup job trains
        them once (``seqmatch.train`` with stop_after_warmup), so SM runs of every divergence and
        the rest of the BC run start when it ends, not after the whole BC run; the choice depends
        on the run alone, not on what else the grid holds. None for MLE and ULK runs, and where
        there is no warm-up (not ``warm_startable``: bc_warmup_steps 0 or >= steps). A study
        setting's SM run starts from the BC run of that setting (the defaults' BC run where the
        setting changes only SM-phase keys) where the two agree on every ``WARM_START_KEYS`` value;
        one whose SM phase starts at another step than that BC run's snapshot trains its own warm-up
        (None; its steps are the same as the BC run's)."""
        _, setting = split_divergence(divergence_field)
        train = self.run_train(task, method, divergence_field)
        if method not in ("sm", "bc") or not warm_startable({**train, "method": "sm"}):
            return None
        bc_setting = self.run_setting(setting, "bc", task)
        if method == "sm":
            bc = self.run_train(task, "bc", f"none{SETTING_SEP}{bc_setting}" if bc_setting else "none")
            if any(train.get(k) != bc.get(k) for k in WARM_START_KEYS):
                return None
        return self.run_dir(task, "bc", seed, noise, eta, setting=setting)

    def run_config(self, task, method, noise, eta, divergence, seed, stop_after_warmup=False) -> dict:
        """The config file of one run (``seqmatch.train --config``) from its canonical coordinates
        (as in ``RUN``): every SequenceMatchConfig and ModelConfig value, named as in config.yaml. An SM
        run warm-starts from its BC run's snapshot (``warmup_dir``); a BC run resumes from the
        checkpoint its bc_warmup job (``stop_after_warmup``) left."""
        field = divergence
        divergence, _ = split_divergence(field)
        train = {k: v for k, v in self.run_train(task, method, field).items() if reads(method, k)}  # what it reads
        if divergence != "none":
            train["divergence"] = divergence
        out_dir = RUN.format(task=task, method=method, noise=noise, eta=fmt_eta(eta), divergence=field,
                             seed=int(seed))
        warm = method == "sm" and self.warmup_dir(task, method, seed, noise, eta, field)
        train.update(method=method, seed=int(seed), noise=noise, eta=float(eta), output_dir=out_dir,
                     train_file=f"{self.data_dir(task)}/train.jsonl", tokenizer=self.tokenizer_dir(task),
                     warm_start=warm or "")
        if stop_after_warmup:  # only in the bc_warmup job's config (absent: the run's params stay as they were)
            train["stop_after_warmup"] = True
        if self.num_processes(task) > 1:  # seqmatch.train refuses a launch of another size (absent: one process)
            train["num_processes"] = self.num_processes(task)
        return {"train": train, "model": self.task_model(task)}

    # ---- the config files of the other jobs (seqmatch.options: option names are config.yaml's)
    def data_config(self, task: str) -> dict:
        """Options of ``python -m seqmatch.data <data_command(task)>``: tasks.<task>.data (the hub
        keys only for source hub)."""
        d = dict(self.config["tasks"][task]["data"])
        if d.get("source") != "hub":
            for key in ("hub_id", "hub_config"):
                d.pop(key, None)
        if self.kind(task) == "qa" or task != self.kind(task):  # (the built-in text and translation: their kind)
            d["task"] = task
        return d

    def local_data(self, task: str) -> list[str]:
        """The user's own data files a data job reads (source hub with a local hub_id): its
        inputs, so that editing one reruns it."""
        d = self.config["tasks"][task]["data"]
        return [str(p) for p in local_data_files(d.get("hub_id"))] if d.get("source") == "hub" else []

    @staticmethod
    def local_files(path: str | None) -> list[str]:
        """The files under a local tokenizer directory, which may be a model's ([] for a hub id):
        the weights left out, which a tokenizer does not read."""
        return [str(p) for p in local_data_files(path) if p.suffix not in WEIGHT_SUFFIXES]

    def data_command(self, task: str) -> str:
        """The ``python -m seqmatch.data`` subcommand of a task: its kind's (``arithmetic`` for the
        arithmetic tasks, ``qa`` its alias for the others)."""
        kind = self.kind(task)
        return ("arithmetic" if task in ARITH_TASKS else "qa") if kind == "qa" else kind

    def metric(self, task: str) -> str | None:
        """The metric of a task's accuracy table (None for text)."""
        return ACCURACY_METRICS.get(self.kind(task))

    def eval_config(self, task: str, keys=None, split: str = "test") -> dict:
        """Options of ``python -m seqmatch.evaluate``: tasks.<task>.eval (only ``keys``, if given);
        on the validation split every row is scored (n_eval is the test split's)."""
        e = dict(self.config["tasks"][task]["eval"])
        if split == "val":
            e.pop("n_eval", None)
        return {k: e[k] for k in keys if k in e} if keys is not None else e

    # ---- provenance
    def model_description(self, task: str) -> str:
        m = self.task_model(task)
        if m["name_or_path"]:
            parts = [m["name_or_path"]]
            if m.get("lora_r", 0):
                kind = "QLoRA" if m.get("load_in_4bit") else "LoRA"
                parts.append(f"{kind} r={m['lora_r']} alpha={m['lora_alpha']}")
            if m.get("load_in_4bit"):
                parts.append("4-bit")
            return ", ".join(parts)
        return (f"{m.get('arch', 'llama')} from scratch ({m.get('n_layer')} layers, "
                f"d_model {m.get('d_model')}, {m.get('n_head')} heads)")

    def provenance(self, task: str) -> dict:
        """What produced a result (written into every table row and the scorecard)."""
        t = self.task_train(task)
        return dict(profile=self.config["profile_name"], model=self.model_description(task),
                    steps=int(t["max_steps"]), batch_size=int(t["per_device_train_batch_size"]))


def _train_sections(config: dict):
    """(key, dict) of ``train`` and every ``tasks.<task>.train`` of a config."""
    if isinstance(config.get("train"), dict):
        yield "train", config["train"]
    for task, tcfg in (config.get("tasks") or {}).items():
        if isinstance(tcfg, dict) and isinstance(tcfg.get("train"), dict):
            yield f"tasks.{task}.train", tcfg["train"]


def rename_train_keys(config: dict, sources: list[dict] | None = None, names: list[str] | None = None) -> list[str]:
    """Replace, in place, the old names of train keys (``steps``, ``lr``, ``batch_size``, ...:
    ``seqmatch.config.ALIASES``) by the current ones, so that a config file of an earlier seqmatch
    keeps working. ``sources``: the config's layers as given (config.yaml, each --configfile,
    --config; ``names`` theirs), each renamed in place too. One source giving an old and a new name
    of one key with different values is an error (one line each, naming the source); across
    sources the later one wins under either name, as any other key does, so ``config`` (Snakemake's
    merge of them) gets the value of the last source that set it."""
    from seqmatch.config import ALIASES, resolve_aliases

    lines, last = [], {}
    for i, src in enumerate(sources or []):
        for key, section in _train_sections(src):
            where = f"config key '{key}'" + (f" in {names[i]}" if names else "")
            try:
                resolve_aliases(section, where)
            except ValueError as e:
                lines.append(str(e))
            for old, new in ALIASES.items():
                if old in section or new in section:
                    last[(key, new)] = section.pop(old) if old in section else section[new]
                    section[new] = last[(key, new)]
    for key, section in _train_sections(config):
        for old, new in ALIASES.items():
            if old in section:
                value = section.pop(old)
                section[new] = last.get((key, new), value)
    return lines


# ------------------------------------------------------------------------------ command-line values
# snakemake --config KEY=VALUE parses VALUE as int, float, True/False, then YAML with every scalar a
# string: `--config offline=false` or `'train={alpha: 0.5}'` arrive as the strings 'false' and '0.5'.
# They are converted here to the type the schema gives their key.

_TRUE, _FALSE, _NULL = ("true", "yes", "on"), ("false", "no", "off"), ("null", "none", "~", "")


def _schema_branches(root: dict, node: dict) -> list[dict]:
    """``node`` and every schema it is composed of (allOf/anyOf/oneOf/then/else), $refs resolved."""
    while isinstance(node, dict) and "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    out = [node]
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(key, []):
            out += _schema_branches(root, sub)
    for key in ("then", "else"):
        if key in node:
            out += _schema_branches(root, node[key])
    return out


def _schema_children(root: dict, nodes: list[dict], key) -> list[dict]:
    out = []
    for node in (b for n in nodes for b in _schema_branches(root, n)):
        if isinstance(key, int):
            out += [node["items"]] if isinstance(node.get("items"), dict) else []
        elif key in node.get("properties", {}):
            out.append(node["properties"][key])
        elif isinstance(node.get("additionalProperties"), dict):
            out.append(node["additionalProperties"])
    return out


def _schema_types(root: dict, nodes: list[dict]) -> set[str]:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    types: set[str] = set()
    for node in (b for n in nodes for b in _schema_branches(root, n)):
        t = node.get("type")
        types |= {t} if isinstance(t, str) else set(t or ())
        types |= {names.get(type(v), "string") for v in node.get("enum", []) + ([node["const"]] if "const" in node else [])}
    return types


def _coerce_scalar(value, types: set[str]):
    """``value`` as the first of the schema's types it reads as; ValueError if none."""
    if not types or not isinstance(value, (str, bool, int, float)):
        return value  # an unknown key: the schema check names it
    if not isinstance(value, str):
        if "string" in types and not types & {"boolean", "integer", "number"}:
            return str(value)  # snakemake read '123' as a number where the schema wants a string
        return value
    low = value.strip().lower()
    if "null" in types and low in _NULL:
        return None
    if "boolean" in types and low in _TRUE + _FALSE:
        return low in _TRUE
    if "integer" in types and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            pass
    if "string" in types:
        return value
    raise ValueError(" or ".join(sorted(types)))


def coerce_cli_values(cli: dict, schema: dict) -> tuple[dict, list[str]]:
    """The ``snakemake --config`` values with each string converted to its key's type in the
    workflow schema (nested keys, list items, booleans, null); returns (values, errors), one error
    per value that is none of its key's types, naming the key."""
    from seqmatch.config import ALIASES

    errors: list[str] = []

    def children(nodes, k):  # an old train key name (steps, lr, ...) has its current name's type
        return _schema_children(schema, nodes, k) or _schema_children(schema, nodes, ALIASES.get(k, k))

    def walk(value, nodes, path):
        if isinstance(value, dict):
            return {k: walk(v, children(nodes, k), path + [k]) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, _schema_children(schema, nodes, i), path + [i]) for i, v in enumerate(value)]
        try:
            return _coerce_scalar(value, _schema_types(schema, nodes))
        except ValueError as e:
            errors.append(f"config key '{_keypath(path)}' = {value!r} (snakemake --config): expected {e}")
            return value

    return walk(dict(cli), [schema], []), errors


def semantic_errors(config: dict, root: str | None = None, sources: list[dict] | None = None,
                    source_names: list[str] | None = None) -> list[str]:
    """Checks of the workflow config that span several keys or need seqmatch's names (the schema
    checks each key alone); with ``root`` (the repository root) also that grid tables' scripts
    exist. ``sources`` and their names: the config's layers (``layered``), as the Grid takes them;
    a check of effective train values says which file set each."""
    lines = task_name_errors(config)
    if lines:  # alone: the other checks would read the block as a task of another kind
        return lines
    grid = Grid(config, sources, source_names)
    for task in config["tasks"]:
        train, model = grid.task_train(task), grid.task_model(task)
        where = lambda key: grid.origin("train", task, key)  # noqa: E731
        accum = train.get("gradient_accumulation_steps", 1)
        if train["per_device_train_batch_size"] % accum:
            lines.append(f"config key 'tasks.{task}.train.per_device_train_batch_size' = "
                         f"{train['per_device_train_batch_size']}{where('per_device_train_batch_size')}: must be a "
                         f"multiple of gradient_accumulation_steps = {accum}{where('gradient_accumulation_steps')}")
        if train.get("bc_warmup_steps", 0) >= train["max_steps"]:
            lines.append(f"config key 'tasks.{task}.train.bc_warmup_steps' = {train['bc_warmup_steps']}"
                         f"{where('bc_warmup_steps')}: must be < max_steps = {train['max_steps']}{where('max_steps')} "
                         f"(SM runs would never use the SM loss)")
        if not model.get("name_or_path"):  # a model from scratch has max_position_embeddings positions
            max_len = train.get("max_len", TRAIN_DEFAULT_MAX_LEN)
            positions = model.get("max_position_embeddings", MODEL_DEFAULT_POSITIONS)
            if max_len > positions:
                set_where = where("max_len") or f" (not set: seqmatch.train's default)"
                lines.append(f"config key 'tasks.{task}.train.max_len' = {max_len}{set_where}: more than the "
                             f"{positions} positions{grid.origin('model', task, 'max_position_embeddings')} of the "
                             f"model trained from scratch (model.max_position_embeddings); set "
                             f"tasks.{task}.train.max_len to at most that")
        lines += own_task_errors(grid, task)
    for key, value in _divergence_keys(config):
        if value not in DIVERGENCES:
            lines.append(f"config key '{key}' = {value!r}: expected one of {', '.join(DIVERGENCES)}")
    for name, exp in config.get("experiments", {}).items():
        if isinstance(exp, dict) and isinstance(exp.get("task"), str):  # else a schema error
            lines += (study_errors(config, name, exp) if "settings" in exp
                      else grid_table_errors(config, name, exp, root))
    if config.get("experiments", {}).get("table2", {}).get("noise") == "ground_truth":
        lines.append("config key 'experiments.table2.noise' = 'ground_truth': ground-truth noise (digits of the "
                     "question's base) needs an arithmetic task, and Table 2's runs are text (use random)")
    # Table 1's mistake prompts are test questions: more than there are would be cut silently
    data = config.get("tasks", {}).get("add_or_sub_in_base", {}).get("data", {})
    n_test = 200 if data.get("n_test") is None else data["n_test"]  # seqmatch.data arithmetic's default
    for key in ("n_examples", "n_recovery"):
        n = config.get("experiments", {}).get("table1", {}).get(key)
        if n is not None and n > n_test:
            lines.append(f"config key 'experiments.table1.{key}' = {n}: more than the {n_test} test questions "
                         f"of add_or_sub_in_base (tasks.add_or_sub_in_base.data.n_test)")
    lines += local_data_errors(config) + pretrained_errors(config, grid)
    if config["tokenizer"]["name_or_path"] and not config["model"]["name_or_path"]:
        lines.append("config key 'tokenizer.name_or_path' is set but 'model.name_or_path' is null: "
                     "a pretrained tokenizer needs the pretrained model it belongs to")
    return lines


# seqmatch.train's TrainConfig.max_len and ModelConfig.max_position_embeddings defaults (torch-free here)
TRAIN_DEFAULT_MAX_LEN, MODEL_DEFAULT_POSITIONS = 1024, 1024


def own_task_errors(grid: Grid, task: str) -> list[str]:
    """What a task's block needs beyond its schema: the generator source only for the tasks it
    makes, an answer normalisation for a qa task of its own, a vocab_size where a BPE tokenizer is
    trained for it."""
    block, kind, lines = grid.config["tasks"][task], grid.kind(task), []
    key = f"config key 'tasks.{task}"
    if kind == "qa" and block.get("data", {}).get("source") == "generator" and task not in ARITH_TASKS:
        lines.append(f"{key}.data.source' = 'generator': the generator (mathematics_dataset) makes only "
                     f"{', '.join(ARITH_TASKS)}; give your rows with source: hub and hub_id: your file or "
                     f"directory (or a hub dataset)")
    if kind == "qa" and task not in ARITH_TASKS and "answer_normalization" not in (block.get("eval") or {}):
        lines.append(f"missing config key 'tasks.{task}.eval.answer_normalization': how an answer is compared "
                     f"with the model's, one of {', '.join(ANSWER_NORMALIZATIONS)} (numeric: every space "
                     f"deleted, for numbers; strip: leading and trailing spaces; exact: as written)")
    if task in ARITH_TASKS and (block.get("data") or {}).get("base") is not None:
        lines.append(f"{key}.data.base': the arithmetic tasks take each question's base (10 unless 'In base b, "
                     f"...'); base is for a qa task of its own")
    if task in grid.bpe_tasks() and "vocab_size" not in block:
        lines.append(f"missing config key 'tasks.{task}.vocab_size': the size of the BPE tokenizer trained on "
                     f"its data (the model is trained from scratch or has model.new_tokenizer: true)")
    return lines


def pretrained_errors(config: dict, grid: Grid | None = None) -> list[str]:
    """model.name_or_path, tasks.<task>.model.name_or_path and tokenizer.name_or_path that name
    local paths which cannot be loaded (``pretrained_problem``), each with its key; with the
    ``grid``, also a model directory without tokenizer files whose own tokenizer a task would use."""
    keys = [("model.name_or_path", (config.get("model") or {}).get("name_or_path"), "model"),
            ("tokenizer.name_or_path", (config.get("tokenizer") or {}).get("name_or_path"), "tokenizer")]
    keys += [(f"tasks.{task}.model.name_or_path", (tcfg.get("model") or {}).get("name_or_path"), "model")
             for task, tcfg in config.get("tasks", {}).items() if isinstance(tcfg, dict)]
    lines = []
    for key, value, kind in keys:
        problem = pretrained_problem(value, kind) if isinstance(value, str) else None
        if problem:
            lines.append(f"config key '{key}' = {value!r}: {problem}")
    if grid is None or lines or config["tokenizer"].get("name_or_path"):
        return lines
    for task in grid.tasks():  # the model's own tokenizer: its directory must have one
        name = grid.pretrained_tokenizer(task)
        if name is None or pretrained_problem(name, "tokenizer") is None:
            continue
        own = (config["tasks"][task].get("model") or {}).get("name_or_path") == name
        key = f"tasks.{task}.model.name_or_path" if own else "model.name_or_path"
        line = (f"config key '{key}' = {name!r}: the model's own tokenizer is used (tokenizer.name_or_path is "
                f"null), but the directory has no tokenizer files; save the model's tokenizer there "
                f"(tokenizer.save_pretrained(DIR)), set tokenizer.name_or_path to its directory, or set "
                f"model.new_tokenizer: true to train a new BPE tokenizer for it (the model is resized to it)")
        if line not in lines:
            lines.append(line)
    return lines


def local_data_errors(config: dict) -> list[str]:
    """A local data path (tasks.<task>.data.hub_id with source hub) that does not exist, or a
    directory without data files: named before any job (the data job would otherwise look for a
    hub dataset of that name)."""
    lines = []
    for task, tcfg in config.get("tasks", {}).items():
        d = tcfg.get("data") or {}
        hub_id = d.get("hub_id")
        if d.get("source") != "hub" or not isinstance(hub_id, str):
            continue
        key = f"config key 'tasks.{task}.data.hub_id' = {hub_id!r}"
        if os.path.isdir(hub_id) and not any(p.suffix in (".json", ".jsonl", ".csv", ".parquet")
                                             for p in local_data_files(hub_id)):
            lines.append(f"{key}: the directory has no .jsonl/.json/.csv/.parquet files (expected "
                         f"train.jsonl and test.jsonl, or one file per split)")
        elif not os.path.exists(hub_id) and looks_local(hub_id):
            lines.append(f"{key}: no such file or directory (relative paths are from {os.getcwd()}); give "
                         f"the path of your data file or directory, or a hub id 'owner/name'")
    return lines


# what an accuracy table (a grid table without a script) may set; the paper's Tables 5-7 less
ACCURACY_TABLE_KEYS = ("task", "methods", "noise", "etas", "divergences", "seeds", "caption")
PAPER_ACCURACY_TABLE_KEYS = ("task", "noise", "etas", "seeds")


def grid_table_errors(config: dict, name: str, exp: dict, root: str | None = None) -> list[str]:
    """The checks of one grid table (experiments.<name> with a task) that the schema cannot make."""
    key, task = f"config key 'experiments.{name}", exp["task"]
    if name in ARTIFACT_NAMES or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        return [f"{key}': a table needs a name of letters, digits and _ that no other artifact has "
                f"(taken: {', '.join(ARTIFACT_NAMES)})"]
    if task not in config.get("tasks", {}):
        return [f"{key}.task' = {task!r}: no tasks.{task} block"]
    lines = []
    if name in PAPER_ACCURACY_TABLES:
        other = [k for k in exp if k not in PAPER_ACCURACY_TABLE_KEYS]
        if PAPER_ACCURACY_TABLES[name] != task or other:
            lines.append(f"{key}': the paper's {name} is the accuracy table of {PAPER_ACCURACY_TABLES[name]} "
                         f"with {', '.join(PAPER_ACCURACY_TABLE_KEYS[1:])} (its scorecard rows compare with "
                         f"the paper){'; not ' + ', '.join(other) if other else ''}; give another table "
                         f"another name")
    elif "script" not in exp:  # an accuracy table: one row per method, one column per eta
        if task_kind(config, task) not in ACCURACY_METRICS:
            lines.append(f"{key}.task' = {task!r}: an accuracy table (no script) needs a task of kind "
                         f"{' or '.join(ACCURACY_METRICS)} (accuracy, BLEU), not {task_kind(config, task)}")
        other = [k for k in exp if k not in ACCURACY_TABLE_KEYS]
        if other:
            lines.append(f"{key}': an accuracy table (no script) takes {', '.join(ACCURACY_TABLE_KEYS)}, not "
                         f"{', '.join(other)} (give a script to tabulate another grid)")
        if len(exp.get("divergences") or []) > 1:
            lines.append(f"{key}.divergences': an accuracy table has one SM row, so one divergence "
                         f"(give a script to compare divergences)")
    lines += _grid_noise_errors(config, key, exp, task)
    if exp.get("divergences") and "sm" not in exp.get("methods", DEFAULT_TABLE_METHODS):
        lines.append(f"{key}.divergences': divergences apply to SM runs only, and methods has no sm")
    for i, f in enumerate(exp.get("run_files") or []):
        if f not in run_files(config, task):
            lines.append(f"{key}.run_files.{i}' = {f!r}: {task} runs have {', '.join(run_files(config, task))}")
    script = exp.get("script")
    if root is not None and isinstance(script, str) and not os.path.isfile(os.path.join(root, script)):
        where = "" if os.path.isabs(script) else f" (a path from the repository root, {root})"
        lines.append(f"{key}.script' = {script!r}: no such file{where}")
    return lines


def _grid_noise_errors(config: dict, key: str, exp: dict, task: str) -> list[str]:
    """The noise and eta keys of a grid of runs (a grid table's or a study's)."""
    lines = []
    for one, many in (("noise", "noise_types"), ("eta", "etas")):
        if one in exp and many in exp:
            lines.append(f"{key}': give {one} or {many}, not both")
    noises, etas = grid_noises_etas(exp)
    if not noises and any(float(e) > 0 for e in etas):
        lines.append(f"{key}': eta > 0 needs noise or noise_types (without noise every run is noise-free)")
    if noises and not any(float(e) > 0 for e in etas):
        lines.append(f"{key}': noise needs an eta > 0 (eta or etas; at eta 0 every run is noise-free)")
    if "ground_truth" in noises and not has_base(config, task):
        fix = (f"set tasks.{task}.data.base if its answers are numbers in that base, or use "
               if task_kind(config, task) == "qa" else "use ")
        lines.append(f"{key}': ground_truth noise inserts digits 0..b-1 of the question's base b, and the rows "
                     f"of {task} have no base (an arithmetic task's do); {fix}noise: random")
    return lines


def study_errors(config: dict, name: str, exp: dict) -> list[str]:
    """The checks of one study (experiments.<name> with settings) that the schema cannot make."""
    from seqmatch.config import ALIASES

    key, task = f"config key 'experiments.{name}", exp["task"]
    if name in ARTIFACT_NAMES or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        return [f"{key}': a study needs a name of letters, digits and _ that no other artifact has "
                f"(taken: {', '.join(ARTIFACT_NAMES)})"]
    if task not in config.get("tasks", {}):
        return [f"{key}.task' = {task!r}: no tasks.{task} block"]
    if task_kind(config, task) != "qa":
        return [f"{key}.task' = {task!r}: a study scores accuracy, so it needs a task of kind qa, not "
                f"{task_kind(config, task)}"]
    lines = _grid_noise_errors(config, key, exp, task)
    if exp.get("split", "val") == "val" and not (config["tasks"][task]["data"].get("n_val") or 0) > 0:
        lines.append(f"{key}.split' = 'val': tasks.{task}.data.n_val is 0, so there are no validation rows "
                     f"(set n_val, e.g. 500, or split: test once the settings are chosen)")
    task_train = Grid(config).task_train(task)
    for setting, over in (exp.get("settings") or {}).items():
        skey = f"{key}.settings.{setting}"
        for k in over or {}:
            if k in ALIASES:
                lines.append(f"{skey}.{k}': an old name, write {ALIASES[k]} (settings use the current names)")
            elif k in RUN_FIELDS or k in WORKFLOW_ONLY:
                lines.append(f"{skey}.{k}': not a setting (the study's grid or the workflow sets it)")
        train = {**task_train, **(over or {})}
        if not 0 < int(train["bc_warmup_steps"]) < int(train["max_steps"]):
            lines.append(f"{skey}': bc_warmup_steps = {train['bc_warmup_steps']} must be > 0 and < max_steps = "
                         f"{train['max_steps']} (an SM run needs its BC warm-up and an SM phase)")
        for other, oexp in config["experiments"].items():
            if (other < name and isinstance(oexp, dict) and setting in (oexp.get("settings") or {})
                    and (oexp["settings"][setting] or {}) != (over or {})):
                lines.append(f"{skey}': also defined, differently, in experiments.{other}.settings (a setting "
                             f"name is part of run directories: it must mean one thing)")
    if "replicates" in exp:
        lines += replicate_errors(config, key, exp)
    return lines


def replicate_errors(config: dict, key: str, exp: dict) -> list[str]:
    """A study that repeats another with more seeds (``replicates``) must score the same rows of the
    same comparison: otherwise the outcome would read a validation interval of something else."""
    target = exp["replicates"]
    other = config["experiments"].get(target)
    if not (isinstance(other, dict) and "settings" in other) or "replicates" in other:
        return [f"{key}.replicates' = {target!r}: no study of that name (an experiments.<name> block with "
                f"settings and no replicates of its own)"]
    lines = [f"{key}.{k}' = {exp.get(k)!r}: the study it replicates, experiments.{target}, has {other.get(k)!r} "
             f"(a replication repeats the same comparison)"
             for k in ("task", "noise", "noise_types", "eta", "etas", "methods") if exp.get(k) != other.get(k)]
    if exp.get("split", "val") != "val" or other.get("split", "val") != "val":
        lines.append(f"{key}.split': a replication repeats a validation study on the validation rows: it and "
                     f"experiments.{target} need split val")
    extra = [s for s in exp["settings"] if s not in other["settings"]]
    if extra:
        lines.append(f"{key}.settings': {', '.join(extra)} not in experiments.{target}.settings (a replication "
                     f"repeats settings of the study it replicates)")
    missing = [int(s) for s in other["seeds"] if s not in exp["seeds"]]
    if missing or len(exp["seeds"]) <= len(other["seeds"]):
        lines.append(f"{key}.seeds' = {list(exp['seeds'])}: a replication has every seed of experiments.{target} "
                     f"({list(other['seeds'])}) and more" + (f"; missing {missing}" if missing else ""))
    return lines


def _divergence_keys(config: dict):
    """(key, value) of every divergence the config names (the schema leaves them to this check, so
    a divergence is added in seqmatch.losses and DIVERGENCES alone)."""
    if "divergence" in config.get("train", {}):
        yield "train.divergence", config["train"]["divergence"]
    for task, tcfg in config.get("tasks", {}).items():
        if "divergence" in (tcfg.get("train") or {}):
            yield f"tasks.{task}.train.divergence", tcfg["train"]["divergence"]
    for name, exp in config.get("experiments", {}).items():
        for i, div in enumerate((exp.get("divergences") or []) if isinstance(exp, dict) else []):
            yield f"experiments.{name}.divergences.{i}", div


def _keypath(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _describe_error(err) -> list[str]:
    """One line per offending key: 'config key train.gamma = 1.0: ...'."""
    key = _keypath(err.absolute_path)
    desc = err.schema.get("description", "") if isinstance(err.schema, dict) else ""
    names = [str(p) for p in err.absolute_path if not isinstance(p, int)]
    hint = f"  [{names[-1] if names else 'config'}: {desc.strip()}]" if desc else ""
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        return [f"unknown config key '{_keypath(list(err.absolute_path) + [k])}' "
                f"(allowed under '{key}': {', '.join(allowed)})" for k in err.instance if k not in allowed]
    if err.validator == "required":  # a conditional requirement (if/then) says why
        why = f" ({desc.strip()})" if desc and "then" in err.absolute_schema_path else ""
        return [f"missing config key '{_keypath(list(err.absolute_path) + [k])}'{why}"
                for k in err.validator_value if k not in err.instance]
    if err.validator in ("anyOf", "oneOf") and err.context:
        inner = min(err.context, key=lambda e: len(list(e.absolute_path)))
        return [f"config key '{key}' = {err.instance!r}: {inner.message}{hint}"]
    return [f"config key '{key}' = {err.instance!r}: {err.message}{hint}"]


def task_name_errors(config: dict) -> list[str]:
    """A tasks.<name> block whose name or kind is wrong (the schema's errors for it would not say
    that the name or the kind is the problem): a name that is no path part, a reserved name, a task
    of its own name without a known kind, a built-in task declared of another kind."""
    tasks = config.get("tasks") if isinstance(config.get("tasks"), dict) else {}
    lines = []
    for task, block in tasks.items():
        kind = block.get("kind") if isinstance(block, dict) else None
        key = f"config key 'tasks.{task}"
        if not re.fullmatch(TASK_NAME, str(task)) or task in RESERVED_TASK_NAMES:
            lines.append(f"{key}': a task name is letters, digits and _ (a letter first), not "
                         f"{', '.join(RESERVED_TASK_NAMES)}; it names the task's directories")
        elif task in PRESET_KINDS and kind not in (None, PRESET_KINDS[task]):
            lines.append(f"{key}.kind' = {kind!r}: {task} is the built-in {PRESET_KINDS[task]} task; give your "
                         f"task of kind {kind} another name")
        elif task not in PRESET_KINDS and kind not in KINDS:
            got = "is missing" if kind is None else f"= {kind!r}"
            lines.append(f"{key}.kind' {got}: a task of its own name declares its kind, one of "
                         f"{', '.join(KINDS)} (qa: question and answer rows, accuracy; text: text rows, MAUVE "
                         f"and perplexity; translation: en/fr pairs, BLEU); the built-in tasks are "
                         f"{', '.join(TASKS)}")
    return lines


def experiment_name_errors(config: dict, schema: dict) -> list[str]:
    """An experiments.<name> block that is no artifact of the paper and names no task (the schema
    reads it as a grid table, whose missing keys would not say that the name is the problem)."""
    exps = config.get("experiments") if isinstance(config.get("experiments"), dict) else {}
    paper = schema["properties"]["experiments"]["properties"]
    return [f"config key 'experiments.{name}': not an experiment of the paper ({', '.join(paper)}), and "
            f"without a task not a grid table either (experiments.<name>.task)"
            for name, exp in exps.items() if name not in paper and not (isinstance(exp, dict) and "task" in exp)]


def schema_errors(config: dict, schema: dict) -> list[str]:
    """Every violation of the workflow schema as a readable line naming the key ([] if valid); a
    misnamed task or experiment is reported alone (``task_name_errors``, ``experiment_name_errors``)."""
    from jsonschema import Draft202012Validator

    names = task_name_errors(config) + experiment_name_errors(config, schema)
    if names:
        return names
    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return list(dict.fromkeys(line for err in errors for line in _describe_error(err)))  # one per key
