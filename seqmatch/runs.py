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

# every task of the grid; an arithmetic task is an entry of seqmatch.data.arithmetic.ARITHMETIC_TASKS
# plus a tasks.<name> block of config.yaml
ARITH_TASKS = tuple(ARITHMETIC_TASKS)
TASKS = ARITH_TASKS + ("text", "translation")
METHODS = ("mle", "bc", "sm", "ulk")
NOISES = ("none", "random", "ground_truth")
DIVERGENCES = ("chi2", "chi2_mix", "kl", "js")
# estimators of the model rows' value term of eq. 4 (seqmatch.losses.sequence_match_loss, initial_value)
INITIAL_VALUE_ESTIMATORS = ("data", "plugin")

RUN_ID = "{task}/{method}-{noise}-eta{eta}-{divergence}/seed{seed}"
RUN = "resources/runs/" + RUN_ID
# written by a BC run stopped after its warm-up (SequenceMatchConfig.stop_after_warmup), beside bc_warmup/
WARMUP_DONE = "bc_warmup.json"

# run config train keys set per run (grid coordinates, file layout; train_file and tokenizer are
# seqmatch.train's data flags), not config.yaml train keys; SequenceMatchConfig fields of the Python
# API only (the run config's model section holds the model); and train keys of config.yaml that
# are the workflow's, not SequenceMatchConfig's
RUN_FIELDS = ("method", "train_file", "tokenizer", "output_dir", "seed", "noise", "eta", "warm_start",
              "stop_after_warmup")
API_ONLY = ("model_init_kwargs", "eval_steps", "per_device_eval_batch_size")
# (num_processes is also a SequenceMatchConfig field: a run config carries it when > 1, see run_config)
WORKFLOW_ONLY = ("num_processes", "launch_device")
# ModelConfig fields that only apply to a model built from scratch
FROM_SCRATCH_FIELDS = ("arch", "n_layer", "n_head", "d_model", "d_ff", "max_position_embeddings")

# ------------------------------------------------------------------------------ run identity

# SequenceMatchConfig fields that do not change what is trained (where it is written, how often it
# logs, evaluates or saves; the model is the identity's own part)
# (num_processes: the identity holds the count the run trained on, whatever the config said)
NOT_IDENTITY = ("output_dir", "save_steps", "logging_steps", "max_nonfinite", "warm_start", "stop_after_warmup",
                "grad_diagnostics_every", "num_processes", "report_to", "eval_steps", "per_device_eval_batch_size",
                "model_init_kwargs")
# what an SM run shares with the BC run it warm-starts from: its first bc_warmup_steps are then
# exactly that BC run's (beta = 1, no replay rows), besides the model, the data and the process count
WARM_START_KEYS = ("seed", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                   "learning_rate", "weight_decay", "warmup_steps", "max_grad_norm", "mixed_precision", "max_len",
                   "mask_prompt", "noise", "eta", "bc_warmup_steps")


# ---- study settings: named train-key overrides (experiments.<study>.settings), part of a run's
# directory name as "<divergence>+<setting>". TrainConfig keys that shape only an SM run's SM phase:
# a BC or MLE run trains the same whatever their values, so a setting that changes only these
# shares the BC and MLE runs of the defaults (its SM runs are paired with them)
SM_PHASE_KEYS = ("alpha", "gamma", "divergence", "logit_bound", "initial_value", "bc_warmup_steps",
                 "beta_final", "beta_anneal_steps", "replay_capacity", "replay_reuse", "gen_batch_size",
                 "model_rows", "max_prompt_len", "max_new_tokens", "temperature", "top_p",
                 "grad_diagnostics_every")
SETTING_SEP = "+"
SETTING_NAME = r"[A-Za-z0-9_.]+"


def split_divergence(field: str) -> tuple[str, str | None]:
    """A run directory's divergence field -> (divergence, setting or None): 'chi2_mix+alpha1' ->
    ('chi2_mix', 'alpha1'); 'none' -> ('none', None)."""
    div, sep, setting = field.partition(SETTING_SEP)
    return div, (setting if sep else None)


def identity(train: dict, model: dict, data_sha256: str | None, tokenizer_sha256: str | None,
             num_processes: int) -> dict:
    """What makes two runs the same run: the SequenceMatchConfig fields that shape the result, the
    model config, the training rows' and the tokenizer's content and the process count. A
    checkpoint resumes only its own run; an SM run warm-starts only from its own BC run's snapshot."""
    return {"train": {k: v for k, v in train.items() if k not in NOT_IDENTITY}, "model": dict(model),
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
# the per-run files a grid table can read (run_files) and the tasks whose runs have them
RUN_FILES = {"summary.json": TASKS, "eval.json": ARITH_TASKS + ("translation",),
             "eval_sample.json": ("text",), "eval_contrastive.json": ("text",),
             "mistakes.json": ("add_or_sub_in_base",)}
# the metric of an accuracy table (BLEU for translation)
ACCURACY_METRICS = {"translation": "bleu", **{task: "accuracy" for task in ARITH_TASKS}}
# the paper's accuracy tables and their tasks (the scorecard compares them with the paper's numbers)
PAPER_ACCURACY_TABLES = {"table5": "translation", "table6": "mul", "table7": "list_prime_factors"}
# results/<name>.* of the other artifacts: names a grid table cannot take
ARTIFACT_NAMES = ("figure1", "figure2", "figure3", "table1", "table1_recovery", "table2", "table3", "table4",
                  "table8", "ablation_divergence", "scorecard", "summary", "report")


def grid_noises_etas(exp: dict) -> tuple[list, list]:
    """A grid table's noise types ([] if it names none) and noise levels ([0.0] if it names none)."""
    noises = exp.get("noise_types") or ([exp["noise"]] if "noise" in exp else [])
    return noises, exp.get("etas") or [exp.get("eta", 0.0)]


class Grid:
    """The runs each artifact needs, from a validated workflow config (config.yaml + profile)."""

    def __init__(self, config: dict):
        self.config = config
        self.exp = config["experiments"]

    # ---- per-task settings
    def _train_keys(self, task: str) -> dict:
        """config train, then tasks.<task>.train on top (workflow-only keys included)."""
        return {**self.config["train"], **self.config["tasks"][task].get("train", {})}

    def task_train(self, task: str) -> dict:
        """SequenceMatchConfig values of a task: config train, then tasks.<task>.train on top."""
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
        """ModelConfig values of a task: config model, then tasks.<task>.model on top; the
        from-scratch sizes are dropped when a pretrained model is named (they do not apply)."""
        merged = {**self.config["model"], **self.config["tasks"][task].get("model", {})}
        if merged.get("name_or_path"):
            for key in FROM_SCRATCH_FIELDS:
                merged.pop(key, None)
        return merged

    def data_dir(self, task: str) -> str:
        return f"resources/data/{task}"

    def tokenizer_dir(self, task: str) -> str:
        """Offline profiles train a BPE tokenizer per task; a pretrained tokenizer is shared."""
        if self.config["tokenizer"]["name_or_path"]:
            return "resources/tokenizers/pretrained"
        return f"resources/tokenizers/{task}"

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
        equals the defaults it names the defaults' runs (so choosing a setting as the new defaults
        leaves every other setting's runs as they were)."""
        base = self.task_train(task)
        over = {k: v for k, v in (self.settings()[setting] if setting else {}).items() if base.get(k) != v}
        return over if method == "sm" else {k: v for k, v in over.items() if k not in SM_PHASE_KEYS}

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
        if setting and self.setting_overrides(setting, method, task):
            divergence = f"{divergence}{SETTING_SEP}{setting}"
        return dict(task=task, method=method, noise=noise, eta=fmt_eta(eta), divergence=divergence,
                    seed=int(seed))

    def run_dir(self, task, method, seed, noise="none", eta=0.0, divergence=None, setting=None) -> str:
        return RUN.format(**self.canonical(task, method, seed, noise, eta, divergence, setting))

    def run_train(self, task, method, divergence_field="none") -> dict:
        """The TrainConfig values of a run: the task's, with its setting's overrides on top."""
        _, setting = split_divergence(divergence_field)
        return {**self.task_train(task), **self.setting_overrides(setting, method, task)}

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
        files = self.exp[name].get("run_files") or ["eval_sample.json" if self.exp[name]["task"] == "text"
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
        setting changes only SM-phase keys); one that moves ``bc_warmup_steps`` trains its own
        warm-up (None: the BC run's snapshot is at another step; the steps are the same)."""
        _, setting = split_divergence(divergence_field)
        train = self.run_train(task, method, divergence_field)
        if method not in ("sm", "bc") or not warm_startable({**train, "method": "sm"}):
            return None
        if method == "sm" and "bc_warmup_steps" in self.setting_overrides(setting, "sm", task):
            return None
        return self.run_dir(task, "bc", seed, noise, eta, setting=setting)

    def run_config(self, task, method, noise, eta, divergence, seed, stop_after_warmup=False) -> dict:
        """The config file of one run (``seqmatch.train --config``) from its canonical coordinates
        (as in ``RUN``): every SequenceMatchConfig and ModelConfig value, named as in config.yaml. An SM
        run warm-starts from its BC run's snapshot (``warmup_dir``); a BC run resumes from the
        checkpoint its bc_warmup job (``stop_after_warmup``) left."""
        field = divergence
        divergence, _ = split_divergence(field)
        train = self.run_train(task, method, field)
        if divergence == "none":
            train.pop("divergence", None)  # not an SM run: SequenceMatchConfig's default, unused
        else:
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
        if task in ARITH_TASKS:
            d["task"] = task
        return d

    def local_data(self, task: str) -> list[str]:
        """The user's own data files a data job reads (source hub with a local hub_id): its
        inputs, so that editing one reruns it."""
        d = self.config["tasks"][task]["data"]
        return [str(p) for p in local_data_files(d.get("hub_id"))] if d.get("source") == "hub" else []

    @staticmethod
    def local_files(path: str | None) -> list[str]:
        """The files under a local path (a tokenizer directory); [] for a hub id."""
        return [str(p) for p in local_data_files(path)]

    @staticmethod
    def data_command(task: str) -> str:
        return "arithmetic" if task in ARITH_TASKS else task

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


def rename_train_keys(config: dict, user: dict | None = None) -> list[str]:
    """Replace, in place, the old names of train keys (``steps``, ``lr``, ``batch_size``, ...:
    ``seqmatch.config.ALIASES``) by the current ones, so that a config file of an earlier seqmatch
    keeps working. ``user``: what the user gave on top of config.yaml (``--configfile`` files and
    ``--config``, merged), where an old and a new name of one key with different values is an error
    (one line each). The shipped files use the current names only, so an old name comes from the
    user and overrides config.yaml's value."""
    from seqmatch.config import ALIASES, resolve_aliases

    lines = []
    for key, section in _train_sections(user or {}):
        try:
            resolve_aliases(section, f"config key '{key}'")
        except ValueError as e:
            lines.append(str(e))
    for _, section in _train_sections(config):
        for old, new in ALIASES.items():
            if old in section:
                section[new] = section.pop(old)
    return lines


def semantic_errors(config: dict, root: str | None = None) -> list[str]:
    """Checks of the workflow config that span several keys or need seqmatch's names (the schema
    checks each key alone); with ``root`` (the repository root) also that grid tables' scripts
    exist."""
    lines = task_name_errors(config)
    for task, tcfg in config["tasks"].items():
        train = {**config["train"], **tcfg.get("train", {})}
        accum = train.get("gradient_accumulation_steps", 1)
        if train["per_device_train_batch_size"] % accum:
            lines.append(f"config key 'tasks.{task}.train.per_device_train_batch_size' = "
                         f"{train['per_device_train_batch_size']}: must be a multiple of "
                         f"gradient_accumulation_steps = {accum}")
        if train.get("bc_warmup_steps", 0) >= train["max_steps"]:
            lines.append(f"config key 'tasks.{task}.train.bc_warmup_steps' = {train['bc_warmup_steps']}: "
                         f"must be < max_steps = {train['max_steps']} (SM runs would never use the SM loss)")
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
    lines += local_data_errors(config) + pretrained_errors(config)
    if config["tokenizer"]["name_or_path"] and not config["model"]["name_or_path"]:
        lines.append("config key 'tokenizer.name_or_path' is set but 'model.name_or_path' is null: "
                     "a pretrained tokenizer needs the pretrained model it belongs to")
    return lines


def pretrained_errors(config: dict) -> list[str]:
    """model.name_or_path, tasks.<task>.model.name_or_path and tokenizer.name_or_path that name
    local paths which cannot be loaded (``pretrained_problem``), each with its key."""
    keys = [("model.name_or_path", (config.get("model") or {}).get("name_or_path"), "model"),
            ("tokenizer.name_or_path", (config.get("tokenizer") or {}).get("name_or_path"), "tokenizer")]
    keys += [(f"tasks.{task}.model.name_or_path", (tcfg.get("model") or {}).get("name_or_path"), "model")
             for task, tcfg in config.get("tasks", {}).items() if isinstance(tcfg, dict)]
    lines = []
    for key, value, kind in keys:
        problem = pretrained_problem(value, kind) if isinstance(value, str) else None
        if problem:
            lines.append(f"config key '{key}' = {value!r}: {problem}")
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
        if task not in ACCURACY_METRICS:
            lines.append(f"{key}.task' = {task!r}: an accuracy table (no script) needs one of "
                         f"{', '.join(ACCURACY_METRICS)}")
        other = [k for k in exp if k not in ACCURACY_TABLE_KEYS]
        if other:
            lines.append(f"{key}': an accuracy table (no script) takes {', '.join(ACCURACY_TABLE_KEYS)}, not "
                         f"{', '.join(other)} (give a script to tabulate another grid)")
        if len(exp.get("divergences") or []) > 1:
            lines.append(f"{key}.divergences': an accuracy table has one SM row, so one divergence "
                         f"(give a script to compare divergences)")
    lines += _grid_noise_errors(key, exp, task)
    if exp.get("divergences") and "sm" not in exp.get("methods", DEFAULT_TABLE_METHODS):
        lines.append(f"{key}.divergences': divergences apply to SM runs only, and methods has no sm")
    for i, f in enumerate(exp.get("run_files") or []):
        if task not in RUN_FILES.get(f, ()):
            has = [g for g, tasks in RUN_FILES.items() if task in tasks]
            lines.append(f"{key}.run_files.{i}' = {f!r}: {task} runs have {', '.join(has)}")
    script = exp.get("script")
    if root is not None and isinstance(script, str) and not os.path.isfile(os.path.join(root, script)):
        where = "" if os.path.isabs(script) else f" (a path from the repository root, {root})"
        lines.append(f"{key}.script' = {script!r}: no such file{where}")
    return lines


def _grid_noise_errors(key: str, exp: dict, task: str) -> list[str]:
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
    if "ground_truth" in noises and task not in ARITH_TASKS:
        lines.append(f"{key}': ground_truth noise (digits of the question's base) needs an arithmetic task, "
                     f"not {task}")
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
    if task not in ARITH_TASKS:
        return [f"{key}.task' = {task!r}: a study scores accuracy, so it needs an arithmetic task "
                f"({', '.join(ARITH_TASKS)})"]
    lines = _grid_noise_errors(key, exp, task)
    if exp.get("split", "val") == "val" and not (config["tasks"][task]["data"].get("n_val") or 0) > 0:
        lines.append(f"{key}.split' = 'val': tasks.{task}.data.n_val is 0, so there are no validation rows "
                     f"(set n_val, e.g. 500, or split: test once the settings are chosen)")
    task_train = {**config["train"], **(config["tasks"][task].get("train") or {})}
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
    """A tasks.<name> block that names no task (the schema reads it as an arithmetic task, whose
    errors would not say that the name is the problem)."""
    tasks = config.get("tasks") if isinstance(config.get("tasks"), dict) else {}
    return [f"config key 'tasks.{task}' names no task of seqmatch (expected one of {', '.join(TASKS)}; a "
            f"new arithmetic task needs an entry in seqmatch.data.arithmetic.ARITHMETIC_TASKS)"
            for task in tasks if task not in TASKS]


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
    return [line for err in errors for line in _describe_error(err)]
