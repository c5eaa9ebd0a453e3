# Helpers shared by the workflow: config validation, the experiment grid, run directories and
# the argument lists of the seqmatch CLIs. Rule files hold rules only (snakemake --lint).

import os
import shlex

import numpy as np
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# ------------------------------------------------------------------------------ validation

SCHEMA_PATH = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")


def _keypath(parts):
    return ".".join(str(p) for p in parts) or "<top level>"


def _describe_error(err):
    """One line per offending key: 'config key train.gamma = 1.0: ...'."""
    key = _keypath(err.absolute_path)
    desc = err.schema.get("description", "") if isinstance(err.schema, dict) else ""
    names = [str(p) for p in err.absolute_path if not isinstance(p, int)]
    hint = f"  [{names[-1] if names else 'config'}: {desc.strip()}]" if desc else ""
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        unknown = [k for k in err.instance if k not in allowed]
        return [
            f"unknown config key '{_keypath(list(err.absolute_path) + [k])}' "
            f"(allowed under '{key}': {', '.join(allowed)})"
            for k in unknown
        ]
    if err.validator == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        return [f"missing config key '{_keypath(list(err.absolute_path) + [k])}'" for k in missing]
    if err.validator in ("anyOf", "oneOf") and err.context:
        inner = min(err.context, key=lambda e: len(list(e.absolute_path)))
        return [f"config key '{key}' = {err.instance!r}: {inner.message}{hint}"]
    return [f"config key '{key}' = {err.instance!r}: {err.message}{hint}"]


def config_errors(cfg):
    """Every schema violation of cfg as a readable line naming the key (empty if valid)."""
    from jsonschema import Draft202012Validator

    with open(SCHEMA_PATH) as f:
        schema = yaml.safe_load(f)
    errors = sorted(
        Draft202012Validator(schema).iter_errors(cfg),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    lines = []
    for err in errors:
        lines.extend(_describe_error(err))
    return lines


def validate_config(cfg):
    """Validate against the schema (snakemake.utils.validate); on failure raise one error that
    names every bad key. Runs while the Snakefile is parsed, i.e. before any job."""
    try:
        validate(cfg, schema="../schemas/config.schema.yaml")
    except Exception as exc:  # WorkflowError wrapping a jsonschema.ValidationError
        lines = config_errors(cfg) or [str(exc)]
        raise WorkflowError(
            "Invalid configuration (checked against workflow/schemas/config.schema.yaml; "
            "nothing was run):\n  - " + "\n  - ".join(lines)
        ) from None
    lines = semantic_errors(cfg)
    if lines:
        raise WorkflowError("Invalid configuration (nothing was run):\n  - " + "\n  - ".join(lines))


def semantic_errors(cfg):
    """Checks that span several keys (the schema checks each key alone)."""
    lines = []
    for task, tcfg in cfg["tasks"].items():
        train = {**cfg["train"], **tcfg.get("train", {})}
        if train["batch_size"] % train.get("grad_accum", 1):
            lines.append(
                f"config key 'tasks.{task}.train.batch_size' = {train['batch_size']}: "
                f"must be a multiple of grad_accum = {train['grad_accum']}"
            )
        if train.get("bc_warmup_steps", 0) >= train["steps"]:
            lines.append(
                f"config key 'tasks.{task}.train.bc_warmup_steps' = {train['bc_warmup_steps']}: "
                f"must be < steps = {train['steps']} (SM runs would never use the SM loss)"
            )
    if cfg["tokenizer"]["name_or_path"] and not cfg["model"]["name_or_path"]:
        lines.append(
            "config key 'tokenizer.name_or_path' is set but 'model.name_or_path' is null: "
            "a pretrained tokenizer needs the pretrained model it belongs to"
        )
    return lines


validate_config(config)

# ------------------------------------------------------------------------------ constants

ARITH_TASKS = ["add_or_sub_in_base", "mul", "list_prime_factors"]
TASKS = ARITH_TASKS + ["text", "translation"]
METHODS = ["mle", "bc", "sm", "ulk"]
NOISES = ["none", "random", "ground_truth"]
DIVERGENCES = ["chi2", "chi2_mix", "kl", "js"]
# display names used by the paper's tables
METHOD_NAMES = {"mle": "MLE", "bc": "BC", "sm": "SM", "ulk": "MLE + ULK"}

# One training run = one directory; every grid coordinate is a wildcard.
RUN = "resources/runs/{task}/{method}-{noise}-eta{eta}-{divergence}/seed{seed}"
LOGS = "resources/logs"
BENCH = "resources/benchmarks"
RUN_ID = "{task}/{method}-{noise}-eta{eta}-{divergence}/seed{seed}"


wildcard_constraints:
    task="|".join(TASKS),
    arith_task="|".join(ARITH_TASKS),
    method="|".join(METHODS),
    noise="|".join(NOISES),
    eta=r"[0-9]+(\.[0-9]+)?",
    divergence="|".join(DIVERGENCES + ["none"]),
    seed=r"[0-9]+",
    decoding="sample|contrastive",
    annotated="table1|table8",


# ------------------------------------------------------------------------------ runs


def fmt_eta(eta):
    """0.0 -> '0', 0.02 -> '0.02', 1e-4 -> '0.0001' (no exponent: eta is part of a path)."""
    return np.format_float_positional(float(eta), trim="-")


def task_train(task):
    """TrainConfig values of a task: config train, then tasks.<task>.train on top."""
    merged = {**config["train"], **config["tasks"][task].get("train", {})}
    merged.pop("num_processes", None)
    return merged


FROM_SCRATCH_FIELDS = ("arch", "n_layer", "n_head", "d_model", "d_ff", "max_position_embeddings")


def task_model(task):
    """ModelConfig values of a task: config model, then tasks.<task>.model on top. The
    from-scratch sizes are dropped when a pretrained model is named (they do not apply)."""
    merged = {**config["model"], **config["tasks"][task].get("model", {})}
    if merged.get("name_or_path"):
        for key in FROM_SCRATCH_FIELDS:
            merged.pop(key, None)
    return merged


def canonical(task, method, seed, noise="none", eta=0.0, divergence=None):
    """The canonical coordinates of a run: MLE/ULK carry no noise; eta 0 and noise 'none' are
    the same run; only SM has a divergence. Equal runs share one directory (trained once)."""
    if method in ("mle", "ulk") or float(eta) == 0.0 or noise == "none":
        noise, eta = "none", 0.0
    if method == "sm":
        divergence = divergence or task_train(task).get("divergence", "chi2_mix")
    else:
        divergence = "none"
    return dict(
        task=task, method=method, noise=noise, eta=fmt_eta(eta), divergence=divergence, seed=int(seed)
    )


def run_dir(task, method, seed, noise="none", eta=0.0, divergence=None):
    return RUN.format(**canonical(task, method, seed, noise, eta, divergence))


def _cli_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cli_flags(values, lists="comma"):
    """{'batch_size': 32, 'name_or_path': None} -> '--batch-size 32' (None values are left out;
    seqmatch.train and seqmatch.data spell their options with hyphens). Lists: 'a,b' for
    seqmatch.train (lists="comma"), 'a b' for nargs options (lists="space")."""
    parts = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            items = [shlex.quote(_cli_value(v)) for v in value]
            text = ",".join(items) if lists == "comma" else " ".join(items)
        else:
            text = shlex.quote(_cli_value(value))
        parts.append(f"--{name.replace('_', '-')} {text}")
    return " ".join(parts)


def train_flags(wildcards):
    """Every TrainConfig/ModelConfig flag of one run (the method, out dir, data and tokenizer
    are in the rule's shell command)."""
    w = wildcards
    values = task_train(w.task)
    values.update(seed=int(w.seed), noise=w.noise, eta=float(w.eta))
    if w.divergence != "none":
        values["divergence"] = w.divergence
    else:
        values.pop("divergence", None)
    values.update(task_model(w.task))
    values["warm_start"] = warm_start_dir(w)
    return cli_flags(values)


def warm_start_dir(wildcards):
    """The BC run an SM run starts from: an SM run's first bc_warmup_steps are exactly the BC
    run's of the same seed, noise and eta (seqmatch.train TrainConfig.warm_start). Only when that
    BC run is in the experiment grid anyway (else training the warm-up here is cheaper than a
    whole BC run) and 0 < bc_warmup_steps < steps; None: the SM run trains its own warm-up."""
    w = wildcards
    if w.method != "sm":
        return None
    t = task_train(w.task)
    if not 0 < int(t["bc_warmup_steps"]) < int(t["steps"]):
        return None
    bc = run_dir(w.task, "bc", w.seed, w.noise, w.eta)
    return bc if bc in grid_runs() else None


def warm_start_input(wildcards):
    bc = warm_start_dir(wildcards)
    return [f"{bc}/summary.json"] if bc else []


def train_launcher(wildcards):
    """`python -m seqmatch.train`, or `accelerate launch` over num_processes processes
    (train.num_processes, or tasks.<task>.train.num_processes)."""
    merged = {**config["train"], **config["tasks"][wildcards.task].get("train", {})}
    n = int(merged.get("num_processes", 1))
    if n <= 1:
        return "python -m seqmatch.train"
    return (
        f"accelerate launch --multi_gpu --num_processes {n} --num_machines 1 "
        "--dynamo_backend no -m seqmatch.train"
    )


def job_env():
    """Environment prefix of every job: offline hubs for offline profiles."""
    if config.get("offline", True):
        return "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1"
    return "HF_HUB_DISABLE_TELEMETRY=1"


def figure1_flags():
    """seqmatch.toychain options from config figure1 (chain_lengths -> --n 10 20 50)."""
    f = dict(config["figure1"])
    lengths = " ".join(str(int(n)) for n in f.pop("chain_lengths"))
    return f"--n {lengths} {cli_flags(f)}"


def eval_flags(task, *, table8=False):
    """seqmatch.evaluate options from tasks.<task>.eval (n_eval -> --n, contrastive_k -> --k).
    Table 8 (text-mistakes) takes only the prompt/new token lengths and the batch size."""
    e = dict(config["tasks"][task]["eval"])
    if table8:
        e = {k: e.get(k) for k in ("prompt_tokens", "new_tokens", "batch_size")}
    renamed = {"n_eval": "n", "contrastive_k": "k"}
    return cli_flags({renamed.get(k, k): v for k, v in e.items()})


# ------------------------------------------------------------------------------ data


def data_dir(task):
    return f"resources/data/{task}"


def tokenizer_dir(task):
    """Offline profiles train a BPE tokenizer per task; a pretrained tokenizer is shared."""
    if config["tokenizer"]["name_or_path"]:
        return "resources/tokenizers/pretrained"
    return f"resources/tokenizers/{task}"


def data_flags(task):
    """Options of `python -m seqmatch.data <kind>` for a task (tasks.<task>.data)."""
    d = dict(config["tasks"][task]["data"])
    if d.get("source") not in ("hub",):
        for key in ("hub_id", "hub_config"):
            d.pop(key, None)
    return cli_flags(d, lists="space")


def translation_data_inputs(wildcards):
    """The length filter of opus_books counts tokens of the model's tokenizer when there is one."""
    if config["tokenizer"]["name_or_path"]:
        return {"tokenizer": tokenizer_dir("translation")}
    return {}


def translation_tokenizer_flag(wildcards, input):
    return f"--tokenizer {input.tokenizer}" if "tokenizer" in input.keys() else ""


# ------------------------------------------------------------------------------ experiments

EXP = config["experiments"]


def _unique(items):
    return list(dict.fromkeys(items))


def figure3_runs():
    """One entry per (panel, method, eta, seed): MLE is repeated in both panels at eta 0."""
    exp = EXP["figure3"]
    task = "add_or_sub_in_base"
    runs = []
    for panel in exp["noise_types"]:
        for seed in exp["seeds"]:
            runs.append(dict(noise_type=panel, method="mle", eta=0.0, seed=seed,
                             dir=run_dir(task, "mle", seed)))
            for method in ("bc", "sm"):
                for eta in exp["etas"]:
                    runs.append(dict(noise_type=panel, method=method, eta=float(eta), seed=seed,
                                     dir=run_dir(task, method, seed, panel, eta)))
    return runs


def accuracy_table_runs(name):
    """Tables 5-7: methods MLE/BC/SM x etas x seeds (MLE: one run per seed for every eta)."""
    exp = EXP[name]
    task = {"table5": "translation", "table6": "mul", "table7": "list_prime_factors"}[name]
    runs = []
    for method in ("mle", "bc", "sm"):
        for eta in exp["etas"]:
            for seed in exp["seeds"]:
                runs.append(dict(method=method, eta=float(eta), seed=seed,
                                 dir=run_dir(task, method, seed, exp["noise"], eta)))
    return runs


def ablation_runs():
    exp = EXP["ablation_divergence"]
    task = "add_or_sub_in_base"
    return [
        dict(divergence=div, noise_type=noise, eta=float(exp["eta"]), seed=seed,
             dir=run_dir(task, "sm", seed, noise, exp["eta"], div))
        for div in exp["divergences"]
        for noise in exp["noise_types"]
        for seed in exp["seeds"]
    ]


# Table 2 rows: (paper's row name, method, decoding)
TABLE2_ROWS = [
    ("MLE", "mle", "sample"),
    ("MLE + C.S.", "mle", "contrastive"),
    ("MLE + ULK", "ulk", "sample"),
    ("MLE + <bkspc>", "bc", "sample"),
    ("SequenceMatch", "sm", "sample"),
]


def text_run(method):
    exp = EXP["table2"]
    return run_dir("text", method, exp["seed"], exp["noise"], exp["eta"])


def table2_runs():
    return [dict(row=row, method=m, decoding=d, eval=f"{text_run(m)}/eval_{d}.json")
            for row, m, d in TABLE2_ROWS]


def timing_runs(name):
    """Tables 3 (text) and 4 (arithmetic): the MLE and SM runs whose summary.json is timed."""
    if name == "table3":
        return [dict(procedure="MLE", dir=text_run("mle")),
                dict(procedure="SequenceMatch", dir=text_run("sm"))]
    exp = EXP["table4"]
    task = "add_or_sub_in_base"
    return [dict(procedure="MLE", dir=run_dir(task, "mle", exp["seed"])),
            dict(procedure="SequenceMatch",
                 dir=run_dir(task, "sm", exp["seed"], exp["noise"], exp["eta"]))]


def grid_runs():
    """Every training run directory the experiment grid names."""
    dirs = [r["dir"] for r in figure3_runs() + ablation_runs()]
    dirs += [r["dir"] for name in ("table5", "table6", "table7") for r in accuracy_table_runs(name)]
    dirs += [r["dir"] for name in ("table3", "table4") for r in timing_runs(name)]
    dirs += [text_run(m) for _, m, _ in TABLE2_ROWS]
    return set(dirs)


def table1_candidates():
    """Table 1 uses the best SM model of Figure 3 (by test accuracy; ties: first)."""
    return _unique(r["dir"] for r in figure3_runs() if r["method"] == "sm")


# Mistakes are drawn from this seed alone (seqmatch.evaluate mistakes), so every run of Table 1's
# recovery metric completes the same mistake prompts, and the qualitative Table 1 shows the first.
MISTAKE_SEED = 0


def table1_recovery_runs():
    """Every distinct training run of Figure 3, once (MLE is in both panels there; here it is one
    row with noise 'none'): the runs whose mistake recovery results/table1_recovery.csv compares."""
    runs = {}
    for r in figure3_runs():
        noise = "none" if r["method"] == "mle" or r["eta"] == 0.0 else r["noise_type"]
        runs.setdefault(r["dir"], dict(r, noise_type=noise))
    return list(runs.values())


def evals(runs, name="eval.json"):
    return _unique(f"{r['dir']}/{name}" for r in runs)


def summaries(runs):
    return _unique(f"{r['dir']}/summary.json" for r in runs)


# ------------------------------------------------------------------------------ provenance


def model_description(task):
    m = task_model(task)
    if m["name_or_path"]:
        parts = [m["name_or_path"]]
        if m.get("lora_r", 0):
            parts.append(f"{'QLoRA' if m.get('load_in_4bit') else 'LoRA'} r={m['lora_r']} alpha={m['lora_alpha']}")
        if m.get("load_in_4bit"):
            parts.append("4-bit")
        return ", ".join(parts)
    return (f"{m.get('arch', 'llama')} from scratch ({m.get('n_layer')} layers, "
            f"d_model {m.get('d_model')}, {m.get('n_head')} heads)")


def provenance(task):
    """What produced a result (written into every table row and the scorecard)."""
    t = task_train(task)
    return dict(profile=config["profile_name"], model=model_description(task),
                steps=int(t["steps"]), batch_size=int(t["batch_size"]))


# ------------------------------------------------------------------------------ resources


def res(group):
    """Rule resources from config resources.<group> (threads are set separately)."""
    r = config["resources"][group]
    out = dict(mem_mb=int(r["mem_mb"]), runtime=int(r["runtime"]))
    if r.get("gpu"):
        out["gpu"] = int(r["gpu"])
        if r.get("gpu_model"):
            out["gpu_model"] = str(r["gpu_model"])
        if r.get("cpus_per_gpu"):
            out["cpus_per_gpu"] = int(r["cpus_per_gpu"])
    return out


def threads(group):
    return int(config["resources"][group]["threads"])


# ------------------------------------------------------------------------------ targets


def all_artifacts():
    return [
        "results/figure1.pdf", "results/figure1.png",
        "results/figure2.pdf", "results/figure2.png",
        "results/figure3.pdf", "results/figure3.png", "results/figure3.csv",
        *[f"results/table{i}.csv" for i in range(1, 9)],
        "results/table1_recovery.csv",
        "results/ablation_divergence.csv",
        "results/scorecard.csv", "results/scorecard.md",
        "results/summary.md",
    ]
