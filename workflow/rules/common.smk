# Helpers shared by the workflow: config validation, the experiment grid (seqmatch.runs.Grid:
# run directories, the runs behind each artifact, each job's config) and the job config files of
# the seqmatch CLIs. Rule files hold rules only (snakemake --lint).

import glob
import json
import os
import re

import yaml
from snakemake.common.configfile import load_configfile
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from seqmatch import launch, runs

# ------------------------------------------------------------------------------ validation

SCHEMA_PATH = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
with open(SCHEMA_PATH) as _f:
    SCHEMA = yaml.safe_load(_f)


def cli_values():
    """snakemake --config values converted to their keys' schema types (they arrive as strings:
    `--config offline=false`, `'train={alpha: 0.5}'`), and put into the config; a value of the
    wrong type stops the run naming its key."""
    values, errors = runs.coerce_cli_values(dict(workflow.config_settings.config or {}), SCHEMA)
    if errors:
        raise WorkflowError("Invalid configuration (nothing was run):\n  - " + "\n  - ".join(errors))
    update_config(config, values)
    return values


def config_sources(cli):
    """The config's layers in the order Snakemake merged them, and their names: config.yaml (the
    Snakefile's configfile), each --configfile, the --config values. A later layer wins at any
    level (seqmatch.runs.layered): a user's global train.steps beats config.yaml's
    tasks.<task>.train.steps."""
    settings = workflow.config_settings
    user = [os.path.abspath(f) for f in settings.configfiles]
    own = [os.path.abspath(f) for f in workflow.configfiles if os.path.abspath(f) not in user]
    files = ([] if settings.replace_workflow_config else own) + user
    names = [os.path.relpath(f) if not os.path.relpath(f).startswith("..") else f for f in files]
    return [load_configfile(f) for f in files] + [cli], names + ["--config"]


def validate_config(cfg, sources, names):
    """Validate against the schema (snakemake.utils.validate); on failure raise one error that
    names every bad key. Runs while the Snakefile is parsed, i.e. before any job. Train keys of
    an earlier seqmatch (steps, lr, ...) are renamed first, in the config and in each of its layers,
    the later layer winning under either name (runs.rename_train_keys)."""
    lines = runs.rename_train_keys(cfg, sources, names)
    if lines:
        raise WorkflowError("Invalid configuration (nothing was run):\n  - " + "\n  - ".join(lines))
    try:
        validate(cfg, schema="../schemas/config.schema.yaml")
    except Exception as exc:  # WorkflowError wrapping a jsonschema.ValidationError
        lines = runs.schema_errors(cfg, SCHEMA) or [str(exc)]
        raise WorkflowError(
            "Invalid configuration (checked against workflow/schemas/config.schema.yaml; "
            "nothing was run):\n  - " + "\n  - ".join(lines)
        ) from None
    lines = runs.semantic_errors(cfg, root=workflow.basedir, sources=sources, source_names=names)
    if lines:
        raise WorkflowError("Invalid configuration (nothing was run):\n  - " + "\n  - ".join(lines))


SOURCES, SOURCE_NAMES = config_sources(cli_values())
validate_config(config, SOURCES, SOURCE_NAMES)

# ------------------------------------------------------------------------------ the grid

GRID = runs.Grid(config, SOURCES, SOURCE_NAMES)
EXP = config["experiments"]
# One training run = one directory; every grid coordinate is a wildcard.
RUN, RUN_ID = runs.RUN, runs.RUN_ID
LOGS = "resources/logs"
BENCH = "resources/benchmarks"
# Mistakes are drawn from this seed alone (seqmatch.evaluate mistakes), so every run of Table 1's
# recovery metric completes the same mistake prompts, and the qualitative Table 1 shows the first.
MISTAKE_SEED = 0


def one_of(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(map(re.escape, names)) or "^$"


wildcard_constraints:
    task=one_of(GRID.tasks()),
    method="|".join(runs.METHODS),
    noise="|".join(runs.NOISES),
    eta=r"[0-9]+(\.[0-9]+)?",
    divergence=f"({'|'.join(runs.DIVERGENCES + ('none',))})(\\{runs.SETTING_SEP}{runs.SETTING_NAME})?",
    seed=r"[0-9]+",
    decoding="sample|contrastive",
    annotated="table1|table8",
    grid_table=one_of(GRID.grid_tables()),
    study=one_of(GRID.studies()),


def evals(run_list, name="eval.json"):
    return list(dict.fromkeys(f"{r['dir']}/{name}" for r in run_list))


def study_split(study):
    """The rows a study scores its runs on: val (the default) or test."""
    return EXP[study].get("split", "val")


def study_csvs(split):
    """results/<study>.csv of every study scoring the ``split`` rows."""
    return [f"results/{name}.csv" for name in GRID.studies() if study_split(name) == split]


def package_sources():
    """The seqmatch package's modules: a job that measures the package reruns when one changes."""
    return sorted(glob.glob("seqmatch/*.py"))


def study_replicates():
    """{study: the study it repeats with more seeds} (experiments.<name>.replicates)."""
    return {name: EXP[name]["replicates"] for name in GRID.studies() if "replicates" in EXP[name]}


def study_file(study, template):
    """A run file of a study's split: eval_val.json / generations_val.jsonl on the validation rows,
    eval.json / generations.jsonl on the test rows."""
    return template.format("_val" if study_split(study) == "val" else "")


# ------------------------------------------------------------------------------ job configs
# Every seqmatch job gets one config file, written by its shell command from params.config
# (printf '%s\n' {params.config:q} > {output.config}) and read with --config (seqmatch.options;
# seqmatch.train: sections train/model), with config.yaml's key names; a changed value changes
# params, so the job reruns. params.config is a function of the wildcards alone, its paths built
# from the same templates as the rule's files (path): Snakemake does not record params functions
# that take input or output in .snakemake/metadata, so a changed value would rerun nothing.


def path(template, wildcards):
    """A rule's file path from its template (e.g. f"{RUN}/eval.json") and the job's wildcards."""
    return template.format(**dict(wildcards.items()))


def job_config(values, **paths):
    """A job's config file: config.yaml values (null: the CLI's default) and the job's paths."""
    return json.dumps({**{k: v for k, v in values.items() if v is not None}, **paths}, sort_keys=True)


def run_config(wildcards, stop_after_warmup=False):
    """The run's config (seqmatch.train --config): every SequenceMatchConfig/ModelConfig value; a
    bc_warmup job's stops after the warm-up snapshot."""
    w = wildcards
    return GRID.run_config(w.task, w.method, w.noise, w.eta, w.divergence, w.seed, stop_after_warmup)


def warmup_input(wildcards):
    """The bc_warmup job an SM or BC run starts after (its BC run's; seqmatch.runs.Grid.warmup_dir)."""
    w = wildcards
    bc = GRID.warmup_dir(w.task, w.method, w.seed, w.noise, w.eta, w.divergence)
    return [f"{bc}/{runs.WARMUP_DONE}"] if bc else []


def train_launcher(wildcards):
    """`python -m seqmatch.train`, or, for num_processes > 1 (train.num_processes, or
    tasks.<task>.train.num_processes), `python -m seqmatch.launch`: `accelerate launch --multi_gpu`
    on the job's CUDA devices, or on CPU (gloo) where the job finds no CUDA or
    train.launch_device is cpu (decided on the node the job runs on)."""
    t = wildcards.task
    return launch.command(GRID.num_processes(t), GRID.launch_device(t))


def job_env():
    """Environment prefix of every job: offline hubs for offline profiles."""
    if config.get("offline", True):
        return "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1"
    return "HF_HUB_DISABLE_TELEMETRY=1"


def translation_data_inputs(wildcards):
    """The length filter of a translation task counts tokens of its pretrained tokenizer when
    there is one (a BPE tokenizer is trained on the filtered data)."""
    t = wildcards.task
    if GRID.kind(t) == "translation" and GRID.pretrained_tokenizer(t):
        return {"tokenizer": GRID.tokenizer_dir(t)}
    return {}


def data_inputs(wildcards):
    """A data job's inputs: the tokenizer of translation_data_inputs and the user's own data files
    (source hub with a local hub_id), so that editing one reruns the job."""
    local = GRID.local_data(wildcards.task)
    return {**translation_data_inputs(wildcards), **({"local_data": local} if local else {})}


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
    """Every results/ file: the outputs of the rules without wildcards (but those on request),
    Tables 1 and 8, the grid tables and the training curves of each artifact's runs (a rule added
    for a new artifact needs no entry here)."""
    on_request = ("outcome", "bench", "bench_table")  # the studies' answer; a timing that needs an idle machine
    fixed = [str(f) for r in workflow.rules if not r.has_wildcards() and r.name not in on_request
             for f in r.output if str(f).startswith("results/")]
    tables = ["table1", "table8"] + GRID.grid_tables()
    curves = [f"results/training_curves/{a}" for a in GRID.curve_artifacts()]
    return sorted(dict.fromkeys(fixed + [f"results/{t}.csv" for t in tables] + curves))
