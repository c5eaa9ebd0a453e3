# Helpers shared by the workflow: config validation, the experiment grid (seqmatch.runs.Grid:
# run directories, the runs behind each artifact, each run's config) and the options of the
# seqmatch CLIs. Rule files hold rules only (snakemake --lint).

import json
import os
import shlex

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from seqmatch import runs

# ------------------------------------------------------------------------------ validation

SCHEMA_PATH = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")


def validate_config(cfg):
    """Validate against the schema (snakemake.utils.validate); on failure raise one error that
    names every bad key. Runs while the Snakefile is parsed, i.e. before any job."""
    try:
        validate(cfg, schema="../schemas/config.schema.yaml")
    except Exception as exc:  # WorkflowError wrapping a jsonschema.ValidationError
        with open(SCHEMA_PATH) as f:
            lines = runs.schema_errors(cfg, yaml.safe_load(f)) or [str(exc)]
        raise WorkflowError(
            "Invalid configuration (checked against workflow/schemas/config.schema.yaml; "
            "nothing was run):\n  - " + "\n  - ".join(lines)
        ) from None
    lines = runs.semantic_errors(cfg)
    if lines:
        raise WorkflowError("Invalid configuration (nothing was run):\n  - " + "\n  - ".join(lines))


validate_config(config)

# ------------------------------------------------------------------------------ the grid

GRID = runs.Grid(config)
EXP = config["experiments"]
ARITH_TASKS = runs.ARITH_TASKS
# One training run = one directory; every grid coordinate is a wildcard.
RUN, RUN_ID = runs.RUN, runs.RUN_ID
LOGS = "resources/logs"
BENCH = "resources/benchmarks"
# Mistakes are drawn from this seed alone (seqmatch.evaluate mistakes), so every run of Table 1's
# recovery metric completes the same mistake prompts, and the qualitative Table 1 shows the first.
MISTAKE_SEED = 0


wildcard_constraints:
    task="|".join(runs.TASKS),
    arith_task="|".join(runs.ARITH_TASKS),
    method="|".join(runs.METHODS),
    noise="|".join(runs.NOISES),
    eta=r"[0-9]+(\.[0-9]+)?",
    divergence="|".join(runs.DIVERGENCES + ("none",)),
    seed=r"[0-9]+",
    decoding="sample|contrastive",
    annotated="table1|table8",


data_dir, tokenizer_dir = GRID.data_dir, GRID.tokenizer_dir
figure3_runs, table1_candidates, table1_recovery_runs = GRID.figure3_runs, GRID.table1_candidates, GRID.table1_recovery_runs
accuracy_table_runs, ablation_runs, timing_runs = GRID.accuracy_table_runs, GRID.ablation_runs, GRID.timing_runs
text_run, table2_runs, provenance = GRID.text_run, GRID.table2_runs, GRID.provenance


def evals(run_list, name="eval.json"):
    return list(dict.fromkeys(f"{r['dir']}/{name}" for r in run_list))


def summaries(run_list):
    return evals(run_list, "summary.json")


# ------------------------------------------------------------------------------ training


def run_config(wildcards):
    """The run's config (seqmatch.train --config): every TrainConfig/ModelConfig value."""
    w = wildcards
    return GRID.run_config(w.task, w.method, w.noise, w.eta, w.divergence, w.seed)


def run_config_json(wildcards):
    return json.dumps(run_config(wildcards), sort_keys=True)


def warm_start_input(wildcards):
    """The BC run an SM run starts from (its summary.json), when the grid has one."""
    bc = run_config(wildcards)["train"]["warm_start"]
    return [f"{bc}/summary.json"] if bc else []


def train_launcher(wildcards):
    """`python -m seqmatch.train`, or `accelerate launch` over num_processes processes
    (train.num_processes, or tasks.<task>.train.num_processes)."""
    n = GRID.num_processes(wildcards.task)
    if n <= 1:
        return "python -m seqmatch.train"
    return (
        f"accelerate launch --multi_gpu --num_processes {n} --num_machines 1 "
        "--dynamo_backend no -m seqmatch.train"
    )


# ------------------------------------------------------------------------------ CLI options


def _cli_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cli_flags(values, lists="space"):
    """{'batch_size': 32, 'name_or_path': None} -> '--batch-size 32' (None values are left out;
    the seqmatch CLIs spell their options with hyphens; lists are nargs options: 'a b')."""
    parts = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            text = " ".join(shlex.quote(_cli_value(v)) for v in value)
        else:
            text = shlex.quote(_cli_value(value))
        parts.append(f"--{name.replace('_', '-')} {text}")
    return " ".join(parts)


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
    """seqmatch.evaluate options from tasks.<task>.eval, under the same names. Table 8
    (text-mistakes) takes only the prompt/new token lengths and the batch size."""
    e = dict(config["tasks"][task]["eval"])
    if table8:
        e = {k: e.get(k) for k in ("prompt_tokens", "new_tokens", "batch_size")}
    return cli_flags(e)


def data_flags(task):
    """Options of `python -m seqmatch.data <kind>` for a task (tasks.<task>.data)."""
    d = dict(config["tasks"][task]["data"])
    if d.get("source") not in ("hub",):
        for key in ("hub_id", "hub_config"):
            d.pop(key, None)
    return cli_flags(d)


def translation_data_inputs(wildcards):
    """The length filter of opus_books counts tokens of the model's tokenizer when there is one."""
    if config["tokenizer"]["name_or_path"]:
        return {"tokenizer": tokenizer_dir("translation")}
    return {}


def translation_tokenizer_flag(wildcards, input):
    return f"--tokenizer {input.tokenizer}" if "tokenizer" in input.keys() else ""


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
