"""seqmatch.runs: run names, the experiment grid, each run's config, run identity (no Snakemake).

Expected values are written out by hand from the small config below.
"""

import copy

import pytest

from seqmatch import runs

CONFIG = {
    "profile_name": "test",
    "tokenizer": {"name_or_path": None},
    "model": {"name_or_path": None, "arch": "llama", "n_layer": 2, "d_model": 64},
    "train": {"max_steps": 100, "per_device_train_batch_size": 8, "bc_warmup_steps": 40, "divergence": "chi2_mix", "num_processes": 1},
    "tasks": {
        "add_or_sub_in_base": {"vocab_size": 300, "train": {"max_steps": 200, "mask_prompt": True}, "model": {"n_layer": 4}},
        "mul": {"vocab_size": 300}, "list_prime_factors": {"vocab_size": 300},
        "text": {"vocab_size": 300, "train": {"bc_warmup_steps": 0}},
        "translation": {"vocab_size": 300},
    },
    "experiments": {
        "figure3": {"noise_types": ["ground_truth", "random"], "etas": [0.05], "seeds": [0]},
        "table2": {"noise": "random", "eta": 0.01, "seed": 0},
        "table4": {"noise": "ground_truth", "eta": 0.05, "seed": 0},
        "table5": {"task": "translation", "noise": "random", "etas": [0.02], "seeds": [0]},
        "table6": {"task": "mul", "noise": "ground_truth", "etas": [0.02], "seeds": [0]},
        "table7": {"task": "list_prime_factors", "noise": "ground_truth", "etas": [0.02], "seeds": [0]},
        "ablation_divergence": {"divergences": ["js"], "noise_types": ["random"], "eta": 0.2, "seeds": [1]},
    },
}
ADD = "resources/runs/add_or_sub_in_base"


def test_run_names_are_canonical():
    g = runs.Grid(CONFIG)
    # MLE carries no noise, eta 0 is the noise-free run, only SM has a divergence
    assert g.run_dir("add_or_sub_in_base", "mle", 0, "random", 0.2) == f"{ADD}/mle-none-eta0-none/seed0"
    assert g.run_dir("add_or_sub_in_base", "bc", 1, "random", 0.0) == f"{ADD}/bc-none-eta0-none/seed1"
    assert g.run_dir("add_or_sub_in_base", "sm", 0, "random", 1e-4) == f"{ADD}/sm-random-eta0.0001-chi2_mix/seed0"
    assert g.run_dir("add_or_sub_in_base", "sm", 0, "random", 0.2, "js") == f"{ADD}/sm-random-eta0.2-js/seed0"


def distinct_runs(g: runs.Grid) -> set[str]:
    """Every training run directory the artifacts name, each once."""
    dirs = [r["dir"] for r in g.figure3_runs() + g.ablation_runs()]
    dirs += [r["dir"] for name in g.grid_tables() for r in g.grid_table_runs(name)]
    dirs += [r["dir"] for name in ("table3", "table4") for r in g.timing_runs(name)]
    return set(dirs) | {g.text_run(m) for _, m, _ in runs.TABLE2_ROWS}


def test_grid_lists_each_artifacts_runs():
    g = runs.Grid(CONFIG)
    fig3 = g.figure3_runs()
    # per panel: MLE + BC + SM at one eta and one seed; MLE is the same directory in both panels
    assert [(r["noise_type"], r["method"]) for r in fig3] == [
        ("ground_truth", "mle"), ("ground_truth", "bc"), ("ground_truth", "sm"),
        ("random", "mle"), ("random", "bc"), ("random", "sm")]
    assert fig3[0]["dir"] == fig3[3]["dir"] == f"{ADD}/mle-none-eta0-none/seed0"
    assert len(g.table1_recovery_runs()) == 5 and g.table1_recovery_runs()[0]["noise_type"] == "none"
    assert g.text_run("sm") == "resources/runs/text/sm-random-eta0.01-chi2_mix/seed0"
    assert [r["dir"] for r in g.ablation_runs()] == [f"{ADD}/sm-random-eta0.2-js/seed1"]
    # every distinct run: 5 of Figure 3, 1 ablation, 3 x 3 of Tables 5-7, 4 text runs (MLE, ULK,
    # BC, SM; C.S. decodes MLE's model); Table 4's runs are Figure 3's
    assert len(distinct_runs(g)) == 5 + 1 + 9 + 4
    # another block with a task is another accuracy table, with its own runs
    cfg = copy.deepcopy(CONFIG)
    cfg["experiments"]["table9"] = {"task": "add_or_sub_in_base", "noise": "random", "etas": [0.3], "seeds": [2]}
    g9 = runs.Grid(cfg)
    assert g9.accuracy_tables() == ["table5", "table6", "table7", "table9"]
    assert [r["dir"] for r in g9.grid_table_runs("table9")] == [
        f"{ADD}/mle-none-eta0-none/seed2", f"{ADD}/bc-random-eta0.3-none/seed2", f"{ADD}/sm-random-eta0.3-chi2_mix/seed2"]
    assert len(distinct_runs(g9)) == len(distinct_runs(g)) + 3


def test_a_grid_table_is_the_product_of_its_block():
    """A grid table of a new kind: every method x noise type x eta x divergence (SM only) x seed,
    written out by hand; MLE rows repeat the one noise-free run of each seed."""
    cfg = copy.deepcopy(CONFIG)
    cfg["experiments"]["bkspc"] = {
        "task": "add_or_sub_in_base", "methods": ["mle", "sm"], "noise_types": ["random", "ground_truth"],
        "eta": 0.1, "divergences": ["js", "kl"], "seeds": [3, 4], "script": "tests/my_table.py",
        "run_files": ["eval.json", "summary.json"]}
    g = runs.Grid(cfg)
    assert g.grid_tables() == ["table5", "table6", "table7", "bkspc"]
    assert g.accuracy_tables() == ["table5", "table6", "table7"]  # bkspc has its own script
    assert g.grid_table_script("bkspc") == "tests/my_table.py"
    assert g.grid_table_script("table6") == "workflow/scripts/accuracy_table.py"
    rows = g.grid_table_runs("bkspc")
    mle = [(r["noise"], r["eta"], r["divergence"], r["seed"], r["dir"]) for r in rows if r["method"] == "mle"]
    assert mle == [("random", 0.1, "none", 3, f"{ADD}/mle-none-eta0-none/seed3"),
                   ("random", 0.1, "none", 4, f"{ADD}/mle-none-eta0-none/seed4"),
                   ("ground_truth", 0.1, "none", 3, f"{ADD}/mle-none-eta0-none/seed3"),
                   ("ground_truth", 0.1, "none", 4, f"{ADD}/mle-none-eta0-none/seed4")]
    sm = {(r["noise"], r["divergence"], r["seed"], r["dir"]) for r in rows if r["method"] == "sm"}
    assert sm == {(n, d, s, f"{ADD}/sm-{n}-eta0.1-{d}/seed{s}")
                  for n in ("random", "ground_truth") for d in ("js", "kl") for s in (3, 4)}
    assert len(rows) == 4 + 8 and all(r["task"] == "add_or_sub_in_base" for r in rows)
    # 2 MLE + 8 SM run directories, two files each
    inputs = g.grid_table_inputs("bkspc")
    assert len(inputs) == 20 and f"{ADD}/sm-random-eta0.1-kl/seed4/summary.json" in inputs
    assert g.grid_table_inputs("table5") == [  # the default: the task's evaluation
        f"resources/runs/translation/{m}/seed0/eval.json"
        for m in ("mle-none-eta0-none", "bc-random-eta0.02-none", "sm-random-eta0.02-chi2_mix")]
    assert len(distinct_runs(g)) == len(distinct_runs(runs.Grid(CONFIG))) + 10
    # no noise, no eta: the noise-free runs; SM without divergences: the task's divergence
    cfg["experiments"]["clean"] = {"task": "mul", "methods": ["ulk", "sm"], "seeds": [0], "script": "t.py"}
    assert [r["dir"] for r in runs.Grid(cfg).grid_table_runs("clean")] == [
        "resources/runs/mul/ulk-none-eta0-none/seed0", "resources/runs/mul/sm-none-eta0-chi2_mix/seed0"]


def test_grid_table_script_must_exist(tmp_path):
    cfg = copy.deepcopy(CONFIG)
    cfg["experiments"]["t9"] = {"task": "mul", "seeds": [0], "script": "workflow/scripts/t9.py"}
    errors = runs.semantic_errors(cfg, root=str(tmp_path))
    assert errors == [f"config key 'experiments.t9.script' = 'workflow/scripts/t9.py': no such file (a path "
                      f"from the repository root, {tmp_path})"]
    (tmp_path / "workflow" / "scripts").mkdir(parents=True)
    (tmp_path / "workflow" / "scripts" / "t9.py").write_text("")
    assert runs.semantic_errors(cfg, root=str(tmp_path)) == []
    cfg["experiments"]["t9"]["script"] = str(tmp_path / "elsewhere.py")  # an absolute path: no root
    assert runs.semantic_errors(cfg, root=str(tmp_path)) == [
        f"config key 'experiments.t9.script' = '{tmp_path / 'elsewhere.py'}': no such file"]


def test_job_configs_carry_config_yaml_values_under_their_names():
    cfg = copy.deepcopy(CONFIG)
    cfg["tasks"]["mul"]["data"] = {"source": "generator", "hub_id": "x/y", "n_train": 50, "entropy": [1, 3]}
    cfg["tasks"]["text"]["data"] = {"source": "hub", "hub_id": "x/y", "hub_config": None}
    cfg["tasks"]["text"]["eval"] = {"prompt_tokens": 8, "new_tokens": 4, "contrastive_k": 5, "draws": 2}
    g = runs.Grid(cfg)
    # the hub id only for source hub; an arithmetic task names itself
    assert g.data_config("mul") == {"source": "generator", "n_train": 50, "entropy": [1, 3], "task": "mul"}
    assert g.data_config("text") == {"source": "hub", "hub_id": "x/y", "hub_config": None}
    assert (g.data_command("mul"), g.data_command("text")) == ("arithmetic", "text")
    assert g.eval_config("text") == {"prompt_tokens": 8, "new_tokens": 4, "contrastive_k": 5, "draws": 2}
    assert g.eval_config("text", ["prompt_tokens", "new_tokens", "batch_size"]) == {"prompt_tokens": 8,
                                                                                   "new_tokens": 4}


def test_run_config_carries_every_value_under_its_config_name():
    g = runs.Grid(CONFIG)
    cfg = g.run_config("add_or_sub_in_base", "sm", "ground_truth", "0.05", "chi2_mix", "0")
    t, m = cfg["train"], cfg["model"]
    assert t["max_steps"] == 200 and t["per_device_train_batch_size"] == 8 and t["mask_prompt"] is True  # task over global
    assert (t["method"], t["noise"], t["eta"], t["seed"], t["divergence"]) == ("sm", "ground_truth", 0.05, 0, "chi2_mix")
    assert t["output_dir"] == f"{ADD}/sm-ground_truth-eta0.05-chi2_mix/seed0"
    assert t["train_file"] == "resources/data/add_or_sub_in_base/train.jsonl"
    assert t["tokenizer"] == "resources/tokenizers/add_or_sub_in_base"
    assert "num_processes" not in t  # one process: absent (the run configs of earlier runs stay as they were)
    assert m == {"name_or_path": None, "arch": "llama", "n_layer": 4, "d_model": 64}
    # the SM run starts from the warm-up of the BC run of the same seed, noise and eta
    assert t["warm_start"] == f"{ADD}/bc-ground_truth-eta0.05-none/seed0" and "stop_after_warmup" not in t
    # not an SM run: no divergence, no warm start (a BC run resumes from its bc_warmup job's checkpoint)
    bc = g.run_config("add_or_sub_in_base", "bc", "ground_truth", "0.05", "none", "0")["train"]
    assert "divergence" not in bc and bc["warm_start"] == ""
    job = g.run_config("add_or_sub_in_base", "bc", "ground_truth", "0.05", "none", "0", stop_after_warmup=True)
    assert job["train"] == {**bc, "stop_after_warmup": True}
    # several processes: the run config carries the count (seqmatch.train refuses a launch of another size)
    multi = copy.deepcopy(CONFIG)
    multi["train"].update(num_processes=2, launch_device="cpu")
    g2 = runs.Grid(multi)
    assert g2.run_config("add_or_sub_in_base", "bc", "ground_truth", "0.05", "none", "0")["train"] == \
        {**bc, "num_processes": 2}
    assert g2.launch_device("add_or_sub_in_base") == "cpu" and g.launch_device("add_or_sub_in_base") == "auto"


def test_warm_up_comes_from_the_bc_run_of_the_same_coordinates_whatever_the_grid_holds():
    g = runs.Grid(CONFIG)
    # the ablation's SM run (random, eta 0.2, seed 1): no artifact needs its BC run, it still starts
    # from that BC run's warm-up (the bc_warmup job trains only the warm-up)
    assert g.warmup_dir("add_or_sub_in_base", "sm", 1, "random", 0.2) == f"{ADD}/bc-random-eta0.2-none/seed1"
    assert g.warmup_dir("add_or_sub_in_base", "bc", 1, "random", 0.2) == f"{ADD}/bc-random-eta0.2-none/seed1"
    assert g.warmup_dir("add_or_sub_in_base", "mle", 1, "random", 0.2) is None
    # text: bc_warmup_steps 0, nothing to start from
    assert g.warmup_dir("text", "sm", 0, "random", 0.01) is None
    assert g.warmup_dir("text", "bc", 0, "random", 0.01) is None
    cfg = copy.deepcopy(CONFIG)
    cfg["tasks"]["add_or_sub_in_base"]["train"]["bc_warmup_steps"] = 200  # = steps: no snapshot
    assert runs.Grid(cfg).warmup_dir("add_or_sub_in_base", "sm", 0, "ground_truth", 0.05) is None
    assert runs.warm_startable({"method": "sm", "bc_warmup_steps": 1, "max_steps": 2})
    assert not runs.warm_startable({"method": "sm", "bc_warmup_steps": 0, "max_steps": 2})


def test_pretrained_model_drops_from_scratch_sizes_and_shares_a_tokenizer():
    cfg = copy.deepcopy(CONFIG)
    cfg["model"]["name_or_path"] = "meta-llama/Llama-2-7b-hf"
    cfg["tokenizer"]["name_or_path"] = "meta-llama/Llama-2-7b-hf"
    g = runs.Grid(cfg)
    assert g.task_model("add_or_sub_in_base") == {"name_or_path": "meta-llama/Llama-2-7b-hf"}
    assert g.tokenizer_dir("mul") == "resources/tokenizers/pretrained"
    assert g.model_description("mul") == "meta-llama/Llama-2-7b-hf"


def test_identity_and_its_diff():
    a = runs.identity({"learning_rate": 1e-3, "output_dir": "x", "logging_steps": 1, "report_to": "none", "seed": 0},
                      {"d_ff": 128}, "abc", "t1", 1)
    assert a == {"train": {"learning_rate": 1e-3, "seed": 0}, "model": {"d_ff": 128}, "data_sha256": "abc",
                 "tokenizer_sha256": "t1", "num_processes": 1}
    b = runs.identity({"learning_rate": 2e-3, "output_dir": "y", "logging_steps": 5, "report_to": "tensorboard",
                       "seed": 0}, {"d_ff": 256}, "abd", "t2", 2)
    assert runs.identity_diff(a, b, ["learning_rate", "seed"], " -> ") == [
        "train.learning_rate: 0.001 -> 0.002", "model.d_ff: 128 -> 256", "the training data differ",
        "the tokenizers differ", "num_processes: 1 -> 2"]
    assert runs.identity_diff(a, a, ["learning_rate", "seed"], " -> ") == []


@pytest.mark.parametrize("change, message", [
    (("train", "per_device_train_batch_size", 7),
     "tasks.add_or_sub_in_base.train.per_device_train_batch_size' = 7: must be a multiple of "
     "gradient_accumulation_steps"),
    (("train", "bc_warmup_steps", 200), "bc_warmup_steps' = 200: must be < max_steps = 200"),
])
def test_semantic_errors_name_the_key(change, message):
    cfg = copy.deepcopy(CONFIG)
    cfg["train"]["gradient_accumulation_steps"] = 2
    cfg["train"]["per_device_train_batch_size"] = 8
    section, key, value = change
    cfg["tasks"]["add_or_sub_in_base"][section][key] = value
    errors = runs.semantic_errors(cfg)
    assert len(errors) == 1 and message in errors[0], errors
    assert runs.semantic_errors(CONFIG) == []


@pytest.mark.parametrize("change, message", [
    ({"train": {"divergence": "hellinger"}}, "'train.divergence' = 'hellinger': expected one of chi2, chi2_mix"),
    ({"experiments": {"ablation_divergence": {"divergences": ["js", "tv"]}}},
     "'experiments.ablation_divergence.divergences.1' = 'tv'"),
    ({"tasks": {"sort": {}}}, "'tasks.sort.kind' is missing: a task of its own name declares its kind, one of qa, text, "
                              "translation"),
    ({"tasks": {"sort": {"kind": "regression"}}}, "'tasks.sort.kind' = 'regression': a task of its own name"),
    ({"tasks": {"text": {"kind": "qa"}}}, "'tasks.text.kind' = 'qa': text is the built-in text task; give your task"),
    ({"tasks": {"my-task": {"kind": "qa"}}}, "'tasks.my-task': a task name is letters, digits and _"),
    ({"tasks": {"pretrained": {"kind": "qa"}}}, "'tasks.pretrained': a task name is letters, digits and _ (a letter "
                                                "first), not pretrained"),
    ({"experiments": {"table9": {"task": "text"}}}, "'experiments.table9.task' = 'text': an accuracy table (no script)"),
    ({"experiments": {"table1": {"n_recovery": 201}}}, "'experiments.table1.n_recovery' = 201: more than the 200"),
    ({"experiments": {"table5": {"task": "mul"}}}, "'experiments.table5': the paper's table5 is the accuracy table of translation"),
    ({"experiments": {"table6": {"script": "my.py"}}}, "'experiments.table6': the paper's table6 is the accuracy table of mul"),
    ({"experiments": {"scorecard": {"task": "mul"}}}, "'experiments.scorecard': a table needs a name"),
    ({"experiments": {"table.9": {"task": "mul"}}}, "'experiments.table.9': a table needs a name"),
    ({"experiments": {"t9": {"task": "mul", "seeds": [0], "script": "t.py", "etas": [0.1]}}},
     "'experiments.t9': eta > 0 needs noise or noise_types"),
    ({"experiments": {"t9": {"task": "mul", "seeds": [0], "script": "t.py", "noise": "random",
                             "noise_types": ["random"], "eta": 0.1}}}, "'experiments.t9': give noise or noise_types, not both"),
    ({"experiments": {"t9": {"task": "mul", "seeds": [0], "script": "t.py", "noise": "random"}}},
     "'experiments.t9': noise needs an eta > 0"),
    ({"experiments": {"t9": {"task": "text", "seeds": [0], "script": "t.py", "noise_types": ["ground_truth"],
                             "eta": 0.1}}}, "'experiments.t9': ground_truth noise inserts digits 0..b-1 of the question's "
                                            "base b, and the rows of text have no base (an arithmetic task's do); use noise: random"),
    ({"experiments": {"table2": {"noise": "ground_truth"}}}, "'experiments.table2.noise' = 'ground_truth'"),
    ({"experiments": {"t9": {"task": "mul", "seeds": [0], "noise": "random", "etas": [0.1],
                             "run_files": ["summary.json"]}}},
     "'experiments.t9': an accuracy table (no script) takes task, methods, noise, etas, divergences, seeds, caption, not run_files"),
    ({"experiments": {"t9": {"task": "mul", "seeds": [0], "noise": "random", "etas": [0.1],
                             "divergences": ["js", "kl"]}}}, "'experiments.t9.divergences': an accuracy table has one SM row"),
    ({"experiments": {"table7": {"methods": ["sm"]}}},
     "'experiments.table7': the paper's table7 is the accuracy table of list_prime_factors with noise, etas, seeds (its scorecard rows compare with the paper); not methods"),
    ({"experiments": {"t9": {"task": "mul", "seeds": [0], "script": "t.py", "eta": 0.1, "etas": [0.1],
                             "noise": "random"}}}, "'experiments.t9': give eta or etas, not both"),
    ({"experiments": {"t9": {"task": "mul", "seeds": [0], "script": "t.py", "methods": ["bc"],
                             "divergences": ["js"]}}}, "'experiments.t9.divergences': divergences apply to SM runs only"),
    ({"experiments": {"t9": {"task": "text", "seeds": [0], "script": "t.py", "run_files": ["summary.json", "eval.json"]}}},
     "'experiments.t9.run_files.1' = 'eval.json': text runs have summary.json, eval_sample.json, eval_contrastive.json"),
    ({"experiments": {"t9": {"task": "mul", "seeds": [0], "script": "t.py", "divergences": ["tv"]}}},
     "'experiments.t9.divergences.0' = 'tv': expected one of"),
    ({"experiments": {"t9": {"task": "sort", "seeds": [0], "script": "t.py"}}}, "'experiments.t9.task' = 'sort': no tasks.sort block"),
])
def test_names_are_checked_against_seqmatch(change, message):
    """Divergence and task names are checked here, not by schema enums: a divergence is added in
    seqmatch.losses (its φ) and runs.DIVERGENCES alone."""
    cfg = copy.deepcopy(CONFIG)
    for section, values in change.items():
        for key, value in values.items():
            cfg[section][key] = {**cfg[section].get(key, {}), **value} if isinstance(value, dict) else value
    errors = runs.semantic_errors(cfg)
    assert len(errors) == 1 and message in errors[0], errors


def test_names_agree_with_the_schema_and_the_loss():
    """A divergence or noise type is named once in seqmatch.runs; the loss's φ table must list the
    same divergences, the schema the same noise types (adding a divergence: losses φ, runs)."""
    from pathlib import Path

    import yaml

    from seqmatch import losses

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    defs = schema["$defs"]
    assert "enum" not in defs["divergence"]  # a new divergence: losses φ and runs.DIVERGENCES only
    assert set(defs["noise_type"]["enum"]) == set(runs.NOISES) - {"none"}
    assert set(losses._PHI) == set(runs.DIVERGENCES)
    assert set(schema["properties"]["tasks"]["properties"]) <= set(runs.TASKS)  # others: arithmetic_task


def test_schema_errors_name_each_bad_key():
    from pathlib import Path

    import yaml

    root = Path(__file__).parents[1]
    schema = yaml.safe_load((root / "workflow/schemas/config.schema.yaml").read_text())
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    assert runs.schema_errors(cfg, schema) == []
    cfg["train"]["gamma"] = "high"
    cfg["train"]["stepz"] = 3
    del cfg["experiments"]["table1"]["n_recovery"]
    errors = runs.schema_errors(cfg, schema)
    assert len(errors) == 3, errors
    assert any(e.startswith("config key 'train.gamma' = 'high'") for e in errors)
    assert any(e.startswith("unknown config key 'train.stepz' (allowed under 'train':") for e in errors)
    assert "missing config key 'experiments.table1.n_recovery'" in errors


def test_schema_errors_say_why_a_grid_table_block_is_wrong():
    from pathlib import Path

    import yaml

    root = Path(__file__).parents[1]
    schema = yaml.safe_load((root / "workflow/schemas/config.schema.yaml").read_text())
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    # a misspelled paper experiment: one line naming it, not the keys a grid table would miss
    cfg["experiments"]["figure_3"] = cfg["experiments"]["figure3"]
    errors = runs.schema_errors(cfg, schema)
    assert len(errors) == 1 and errors[0].startswith(
        "config key 'experiments.figure_3': not an experiment of the paper (figure3, table1,"), errors
    del cfg["experiments"]["figure_3"]
    # a grid table without a script is an accuracy table: noise and etas, and the reason
    cfg["experiments"]["table9"] = {"task": "mul", "seeds": [0], "noise": "random"}
    assert runs.schema_errors(cfg, schema) == [
        "missing config key 'experiments.table9.etas' (a grid table without a script is an accuracy table "
        "like Tables 5-7, which needs noise and etas)"]
    cfg["experiments"]["table9"]["script"] = "my_table.py"  # any table over the grid: no etas needed
    assert runs.schema_errors(cfg, schema) == []


STUDY = {"task": "add_or_sub_in_base", "noise": "ground_truth", "eta": 0.05, "seeds": [0, 1],
         "settings": {"defaults": {}, "a1": {"alpha": 1.0}, "short": {"bc_warmup_steps": 150},
                      "long": {"max_steps": 400, "alpha": 0.1}}}


def study_config(**over):
    cfg = copy.deepcopy(CONFIG)
    cfg["tasks"]["add_or_sub_in_base"]["data"] = {"n_val": 50}
    cfg["experiments"]["study"] = {**copy.deepcopy(STUDY), **over}
    return cfg


def test_a_study_setting_names_only_the_runs_it_changes():
    g = runs.Grid(study_config())
    sm, bc = f"{ADD}/sm-ground_truth-eta0.05-chi2_mix", f"{ADD}/bc-ground_truth-eta0.05-none"
    # SM-phase keys change the SM run only; BC and MLE of that setting are the defaults' runs
    assert g.run_dir("add_or_sub_in_base", "sm", 0, "ground_truth", 0.05, setting="a1") == f"{sm}+a1/seed0"
    assert g.run_dir("add_or_sub_in_base", "bc", 0, "ground_truth", 0.05, setting="a1") == f"{bc}/seed0"
    assert g.run_dir("add_or_sub_in_base", "sm", 0, "ground_truth", 0.05, setting="defaults") == f"{sm}/seed0"
    # a setting that spells out the task's own values is the defaults' run too
    cfg = study_config(settings={"spelled": {"max_steps": 200, "bc_warmup_steps": 40}, "a1": {"alpha": 1.0, "max_steps": 200}})
    g2 = runs.Grid(cfg)
    assert g2.run_dir("add_or_sub_in_base", "sm", 0, "ground_truth", 0.05, setting="spelled") == f"{sm}/seed0"
    assert g2.run_dir("add_or_sub_in_base", "bc", 0, "ground_truth", 0.05, setting="a1") == f"{bc}/seed0"
    assert g2.run_config("add_or_sub_in_base", "sm", "ground_truth", 0.05, "chi2_mix+a1", 0)["train"][
        "warm_start"] == f"{bc}/seed0"
    # steps shapes every run: a BC and an MLE run of their own
    assert g.run_dir("add_or_sub_in_base", "bc", 0, "ground_truth", 0.05, setting="long") == f"{bc}+long/seed0"
    assert g.run_dir("add_or_sub_in_base", "mle", 0, setting="long") == f"{ADD}/mle-none-eta0-none+long/seed0"
    rows = g.study_runs("study")
    assert len(rows) == 3 * 4 * 2  # methods x settings x seeds
    assert {r["dir"] for r in rows if r["method"] == "mle"} == {
        f"{ADD}/mle-none-eta0-none/seed0", f"{ADD}/mle-none-eta0-none/seed1",
        f"{ADD}/mle-none-eta0-none+long/seed0", f"{ADD}/mle-none-eta0-none+long/seed1"}
    assert g.studies() == ["study"] and "study" not in g.grid_tables()


def test_a_study_setting_run_config_and_warm_start():
    g = runs.Grid(study_config())
    cfg = g.run_config("add_or_sub_in_base", "sm", "ground_truth", 0.05, "chi2_mix+a1", 0)["train"]
    assert cfg["alpha"] == 1.0 and cfg["divergence"] == "chi2_mix" and cfg["max_steps"] == 200
    assert cfg["output_dir"] == f"{ADD}/sm-ground_truth-eta0.05-chi2_mix+a1/seed0"
    assert cfg["warm_start"] == f"{ADD}/bc-ground_truth-eta0.05-none/seed0"  # the defaults' BC warm-up
    # a later SM phase: the snapshot of the BC run is at another step, the run trains its own warm-up
    cfg = g.run_config("add_or_sub_in_base", "sm", "ground_truth", 0.05, "chi2_mix+short", 0)["train"]
    assert cfg["bc_warmup_steps"] == 150 and cfg["warm_start"] == ""
    # more steps: the SM run starts from the BC run of that setting, which has them too (not alpha)
    cfg = g.run_config("add_or_sub_in_base", "sm", "ground_truth", 0.05, "chi2_mix+long", 1)["train"]
    assert cfg["max_steps"] == 400 and cfg["alpha"] == 0.1
    assert cfg["warm_start"] == f"{ADD}/bc-ground_truth-eta0.05-none+long/seed1"
    bc = g.run_config("add_or_sub_in_base", "bc", "ground_truth", 0.05, "none+long", 1)["train"]
    assert bc["max_steps"] == 400 and "alpha" not in bc  # the setting's SM-phase key stays out of the BC run
    assert g.warmup_dir("add_or_sub_in_base", "bc", 1, "ground_truth", 0.05, "none+long") == \
        f"{ADD}/bc-ground_truth-eta0.05-none+long/seed1"


def test_settings_that_change_a_run_alike_share_it_and_its_warm_up():
    """Defaults moved on past a study: its settings spell out max_steps 200 where the task now
    trains 300 steps. Their MLE and BC runs are one run per seed (named by the first such setting),
    whose snapshot is at that setting's bc_warmup_steps; the SM runs starting there share it, one
    starting elsewhere trains its own warm-up, one at the new defaults' steps uses their BC run."""
    settings = {"center": {"max_steps": 200, "bc_warmup_steps": 100, "alpha": 0.1},
                "a1": {"max_steps": 200, "bc_warmup_steps": 100, "alpha": 1.0},
                "early": {"max_steps": 200, "bc_warmup_steps": 50, "alpha": 0.1},
                "now": {"max_steps": 300, "bc_warmup_steps": 150, "alpha": 0.1}}
    cfg = study_config(settings=settings)
    cfg["tasks"]["add_or_sub_in_base"]["train"].update(max_steps=300, bc_warmup_steps=150)
    g = runs.Grid(cfg)
    bc = f"{ADD}/bc-ground_truth-eta0.05-none"
    rows = g.study_runs("study")
    for method, name in (("mle", f"{ADD}/mle-none-eta0-none"), ("bc", bc)):
        dirs = {r["setting"]: r["dir"] for r in rows if r["method"] == method and r["seed"] == 1}
        assert dirs == {"center": f"{name}+center/seed1", "a1": f"{name}+center/seed1",
                        "early": f"{name}+center/seed1", "now": f"{name}/seed1"}
    assert len({r["dir"] for r in rows if r["method"] == "sm"}) == 4 * 2  # every SM run its own
    run = g.run_config("add_or_sub_in_base", "bc", "ground_truth", 0.05, "none+center", 0)["train"]
    assert (run["max_steps"], run["bc_warmup_steps"]) == (200, 100)
    assert g.warmup_dir("add_or_sub_in_base", "bc", 0, "ground_truth", 0.05, "none+center") == f"{bc}+center/seed0"

    def warm(setting):
        return g.run_config("add_or_sub_in_base", "sm", "ground_truth", 0.05, f"chi2_mix+{setting}", 0)["train"]["warm_start"]

    assert warm("center") == warm("a1") == f"{bc}+center/seed0"
    assert warm("early") == ""  # its SM phase starts at step 50, the shared BC run's snapshot is at 100
    assert warm("now") == f"{bc}/seed0"
    # the defaults' own BC run keeps the defaults' snapshot
    assert g.run_config("add_or_sub_in_base", "bc", "ground_truth", 0.05, "none", 0)["train"]["bc_warmup_steps"] == 150


@pytest.mark.parametrize("over, message", [
    ({"settings": {"a": {"seed": 3}}}, "'experiments.study.settings.a.seed': not a setting"),
    ({"settings": {"a": {"steps": 300}}}, "'experiments.study.settings.a.steps': an old name, write max_steps"),
    ({"settings": {"a": {"bc_warmup_steps": 200}}}, "'experiments.study.settings.a': bc_warmup_steps = 200 must be > 0 and < max_steps = 200"),
    ({"task": "text"}, "'experiments.study.task' = 'text': a study scores accuracy"),
    ({"split": "val", "task": "mul", "settings": {"a1": {"alpha": 1.0}}},
     "'experiments.study.split' = 'val': tasks.mul.data.n_val is 0"),
])
def test_study_errors_name_the_key(over, message):
    cfg = study_config(**over)
    cfg["tasks"]["mul"]["data"] = {}
    errors = runs.semantic_errors(cfg)
    assert len(errors) == 1 and message in errors[0], errors
    assert runs.semantic_errors(study_config()) == []


def test_a_setting_name_means_one_thing():
    cfg = study_config()
    cfg["experiments"]["other"] = {**copy.deepcopy(STUDY), "settings": {"a1": {"alpha": 2.0}}}
    errors = runs.semantic_errors(cfg)
    assert len(errors) == 1 and "'experiments.study.settings.a1': also defined, differently, in experiments.other" \
        in errors[0], errors


def test_old_train_key_names_are_renamed_and_a_conflict_named():
    """A config of an earlier seqmatch (steps, lr, batch_size, ...) keeps working: the old names are
    renamed before validation in the merged config and in each of its layers; across layers the
    later one wins under either name (as for any key); one layer giving both names of one key with
    different values is one error naming both and the layer."""
    base = {"train": {"max_steps": 3, "learning_rate": 1.0}, "tasks": {"add_or_sub_in_base": {"train": {}}}}
    user = {"train": {"steps": 7, "lr": 0.01}, "tasks": {"add_or_sub_in_base": {"train": {"grad_accum": 2}}}}
    cfg = copy.deepcopy(CONFIG)
    cfg["train"].update(steps=7, lr=0.01)  # Snakemake's merge: the user's old names beside config.yaml's new
    cfg["tasks"]["add_or_sub_in_base"]["train"]["grad_accum"] = 2
    assert runs.rename_train_keys(cfg, [base, user], ["config.yaml", "my.yaml"]) == []
    assert cfg["train"]["max_steps"] == 7 and cfg["train"]["learning_rate"] == 0.01 and "steps" not in cfg["train"]
    assert list(cfg["train"])[0] == "max_steps"  # in its place (the job configs' text stays the same)
    assert cfg["tasks"]["add_or_sub_in_base"]["train"]["gradient_accumulation_steps"] == 2
    assert user["train"] == {"max_steps": 7, "learning_rate": 0.01}  # the layers too
    assert runs.Grid(cfg).run_config("mul", "mle", "none", "0", "none", "0")["train"]["max_steps"] == 7
    # a later layer's new name beats an earlier layer's old name, though the old name is renamed last
    cfg = copy.deepcopy(CONFIG)
    cfg["train"].update(steps=600, max_steps=6)
    assert runs.rename_train_keys(cfg, [{"train": {"steps": 600}}, {"train": {"max_steps": 6}}]) == []
    assert cfg["train"]["max_steps"] == 6 and "steps" not in cfg["train"]
    cfg["train"].update(steps=600, max_steps=6)
    assert runs.rename_train_keys(cfg, [{"train": {"max_steps": 6}}, {"train": {"steps": 600}}]) == []
    assert cfg["train"]["max_steps"] == 600
    both = {"train": {"steps": 7, "max_steps": 9}}
    assert runs.rename_train_keys(copy.deepcopy(CONFIG), [both], ["my.yaml"]) == [
        "config key 'train' in my.yaml: steps=7 and max_steps=9: steps is the old name of max_steps; give one of them"]
    assert runs.rename_train_keys(copy.deepcopy(CONFIG), [{"train": {"steps": 9, "max_steps": 9}}]) == []


# ------------------------------------------------------------------ tasks of their own, precedence, --config

REVERSE = {"kind": "qa", "vocab_size": 300, "train": {"max_len": 48},
           "data": {"source": "hub", "hub_id": "mydata", "n_train": 6, "n_test": 2, "seed": 0},
           "eval": {"n_eval": 2, "max_new_tokens": 8, "answer_normalization": "exact"}}


def with_own_tasks() -> dict:
    cfg = copy.deepcopy(CONFIG)
    cfg["tasks"]["reverse"] = copy.deepcopy(REVERSE)
    cfg["tasks"]["poems"] = {"kind": "text", "vocab_size": 300, "data": {"source": "hub", "hub_id": "someone/poems"},
                             "eval": {}}
    cfg["experiments"]["rev"] = {"task": "reverse", "noise": "random", "etas": [0.1], "seeds": [0]}
    return cfg


def test_a_task_of_its_own_name_is_a_task_of_its_kind():
    g = runs.Grid(with_own_tasks())
    assert g.kind("reverse") == "qa" and g.kind("poems") == "text" and g.kind("mul") == "qa"
    assert g.tasks_of_kind("qa") == ["add_or_sub_in_base", "mul", "list_prime_factors", "reverse"]
    # the data job: the qa command (arithmetic for the arithmetic tasks), the task named in its config
    assert (g.data_command("reverse"), g.data_command("mul"), g.data_command("poems")) == ("qa", "arithmetic", "text")
    assert g.data_config("reverse")["task"] == "reverse" and g.data_config("poems")["task"] == "poems"
    g.config["tasks"]["text"]["data"] = {"source": "wiki-sample"}
    assert "task" not in g.data_config("text")  # the built-in text task's job config is as it was
    assert (g.metric("reverse"), g.metric("translation"), g.metric("poems")) == ("accuracy", "bleu", None)
    assert runs.run_files(g.config, "reverse") == ["summary.json", "eval.json"]
    assert runs.run_files(g.config, "add_or_sub_in_base") == ["summary.json", "eval.json", "mistakes.json"]
    assert runs.run_files(g.config, "poems") == ["summary.json", "eval_sample.json", "eval_contrastive.json"]
    assert g.accuracy_tables() == ["table5", "table6", "table7", "rev"]
    assert g.grid_table_runs("rev")[0]["dir"] == "resources/runs/reverse/mle-none-eta0-none/seed0"
    assert g.grid_table_inputs("rev")[-1] == "resources/runs/reverse/sm-random-eta0.1-chi2_mix/seed0/eval.json"
    assert runs.semantic_errors(g.config) == []


@pytest.mark.parametrize("change, message", [
    ({"eval": {"answer_normalization": None}}, "missing config key 'tasks.reverse.eval.answer_normalization': how an "
                                               "answer is compared with the model's, one of numeric, strip, exact"),
    ({"data": {"source": "generator"}}, "'tasks.reverse.data.source' = 'generator': the generator (mathematics_dataset) "
                                        "makes only add_or_sub_in_base, mul, list_prime_factors"),
    ({"vocab_size": None}, "missing config key 'tasks.reverse.vocab_size': the size of the BPE tokenizer"),
    ({"train": {"max_len": None}}, "'tasks.reverse.train.max_len' = 1024 (not set: seqmatch.train's default): more "
                                   "than the 512 positions of the model trained from scratch"),
])
def test_what_an_own_qa_task_needs(change, message):
    cfg = with_own_tasks()
    cfg["model"]["max_position_embeddings"] = 512
    for task in CONFIG["tasks"]:
        cfg["tasks"][task].setdefault("train", {})["max_len"] = 64
    for section, value in change.items():
        if isinstance(value, dict):
            for k, v in value.items():
                cfg["tasks"]["reverse"][section].pop(k) if v is None else cfg["tasks"]["reverse"][section].update({k: v})
        else:
            cfg["tasks"]["reverse"].pop(section)
    errors = runs.semantic_errors(cfg)
    assert len(errors) == 1 and errors[0].startswith(message) or message in errors[0], errors


def test_ground_truth_noise_needs_a_base():
    cfg = with_own_tasks()
    cfg["experiments"]["rev"]["noise"] = "ground_truth"
    [error] = runs.semantic_errors(cfg)
    assert error == ("config key 'experiments.rev': ground_truth noise inserts digits 0..b-1 of the question's base "
                     "b, and the rows of reverse have no base (an arithmetic task's do); set tasks.reverse.data.base "
                     "if its answers are numbers in that base, or use noise: random")
    cfg["tasks"]["reverse"]["data"]["base"] = 10
    assert runs.semantic_errors(cfg) == []
    cfg["tasks"]["mul"]["data"] = {"base": 7}
    assert runs.semantic_errors(cfg) == ["config key 'tasks.mul.data.base': the arithmetic tasks take each question's "
                                         "base (10 unless 'In base b, ...'); base is for a qa task of its own"]


def test_a_pretrained_model_takes_its_own_tokenizer():
    cfg = with_own_tasks()
    cfg["model"]["name_or_path"] = "org/base-model"
    cfg["tasks"]["poems"]["model"] = {"name_or_path": "org/poet"}
    g = runs.Grid(cfg)
    assert g.pretrained_tokenizer("mul") == "org/base-model" and g.tokenizer_dir("mul") == "resources/tokenizers/pretrained"
    assert g.pretrained_tokenizer("poems") == "org/poet" and g.tokenizer_dir("poems") == "resources/tokenizers/pretrained-poems"
    assert g.pretrained_tokenizers() == {"pretrained": "org/base-model", "pretrained-poems": "org/poet"}
    assert g.bpe_tasks() == []
    # new_tokenizer: a BPE tokenizer per task, and the model config says so (seqmatch.model resizes)
    cfg["model"]["new_tokenizer"] = True
    g = runs.Grid(cfg)
    assert g.tokenizer_dir("mul") == "resources/tokenizers/mul" and g.pretrained_tokenizers() == {}
    assert g.run_config("mul", "mle", "none", 0, "none", 0)["model"] == {"name_or_path": "org/base-model",
                                                                         "new_tokenizer": True}
    # a tokenizer named: every task's
    cfg["tokenizer"]["name_or_path"] = "org/tok"
    assert runs.Grid(cfg).pretrained_tokenizers() == {"pretrained": "org/tok"}
    # from scratch: BPE
    assert runs.Grid(CONFIG).pretrained_tokenizers() == {} and runs.Grid(CONFIG).bpe_tasks() == list(CONFIG["tasks"])


def test_identity_leaves_out_new_tokenizer():
    """new_tokenizer permits a pairing; the tokenizer itself is in the identity (a run trained
    before the field existed keeps its identity)."""
    a = runs.identity({"learning_rate": 1.0}, {"d_ff": 8}, "x", "t", 1)
    assert runs.identity({"learning_rate": 1.0}, {"d_ff": 8, "new_tokenizer": False}, "x", "t", 1) == a


def test_a_later_config_file_wins_at_any_level():
    """config.yaml, then the user's file, then --config: each source's global section, then its
    task section; expected values by hand."""
    base = {"train": {"steps": 100, "lr": 1.0}, "model": {"n_layer": 2},
            "tasks": {"mul": {"train": {"steps": 1200, "max_len": 64}, "model": {"n_layer": 4}}}}
    user = {"train": {"steps": 300}, "tasks": {"mul": {"train": {"lr": 0.5}}}}
    cli = {"tasks": {"mul": {"model": {"n_layer": 1}}}}
    assert runs.layered([base], "train", "mul") == {"steps": 1200, "lr": 1.0, "max_len": 64}
    assert runs.layered([base, user], "train", "mul") == {"steps": 300, "lr": 0.5, "max_len": 64}
    assert runs.layered([base, user], "model", "mul") == {"n_layer": 4}
    assert runs.layered([base, user, cli], "model", "mul") == {"n_layer": 1}
    assert runs.layered([base, user], "train", "text") == {"steps": 300, "lr": 1.0}
    # the Grid takes them (the workflow renames old names in every source first: the user's steps
    # is max_steps); an error says which file set each value
    cfg = copy.deepcopy(CONFIG)
    user = {"train": {"steps": 150}}
    assert runs.rename_train_keys({}, [user]) == [] and user == {"train": {"max_steps": 150}}
    cfg["train"]["max_steps"] = 150
    g = runs.Grid(cfg, [CONFIG, user], ["config.yaml", "my.yaml"])
    assert g.task_train("add_or_sub_in_base")["max_steps"] == 150  # not config.yaml's tasks.add_or_sub_in_base 200
    assert g.origin("train", "add_or_sub_in_base", "max_steps") == " (from my.yaml: train.max_steps)"
    assert g.origin("train", "add_or_sub_in_base", "mask_prompt") == " (from config.yaml: tasks.add_or_sub_in_base.train.mask_prompt)"
    user["train"]["bc_warmup_steps"] = 150
    cfg["train"]["bc_warmup_steps"] = 150
    errors = runs.semantic_errors(cfg, sources=[CONFIG, user], source_names=["config.yaml", "my.yaml"])
    assert "config key 'tasks.add_or_sub_in_base.train.bc_warmup_steps' = 150 (from my.yaml: train.bc_warmup_steps): " \
           "must be < max_steps = 150 (from my.yaml: train.max_steps)" in errors[0], errors


def test_command_line_values_take_the_schema_types():
    from pathlib import Path

    import yaml

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    cli = {"offline": "false", "profile_name": 7, "train": {"alpha": "0.5", "steps": "30", "mask_prompt": "True"},
           "tokenizer": {"name_or_path": "null"}, "model": {"name_or_path": "models/x", "new_tokenizer": "yes"},
           "experiments": {"figure3": {"seeds": ["0", "1"], "etas": ["0.1"]}, "mine": {"task": "reverse"}},
           "tasks": {"reverse": {"kind": "qa", "data": {"base": "7", "hub_id": "123"}, "eval": {"n_eval": "4"}}},
           "resources": {"train": {"gpu_model": "null"}}}
    values, errors = runs.coerce_cli_values(cli, schema)
    assert errors == []
    assert values == {"offline": False, "profile_name": "7",
                      "train": {"alpha": 0.5, "steps": 30, "mask_prompt": True},
                      "tokenizer": {"name_or_path": None}, "model": {"name_or_path": "models/x", "new_tokenizer": True},
                      "experiments": {"figure3": {"seeds": [0, 1], "etas": [0.1]}, "mine": {"task": "reverse"}},
                      "tasks": {"reverse": {"kind": "qa", "data": {"base": 7, "hub_id": "123"}, "eval": {"n_eval": 4}}},
                      "resources": {"train": {"gpu_model": None}}}
    _, errors = runs.coerce_cli_values({"train": {"steps": "many", "mask_prompt": "maybe"}, "offline": "0.5"}, schema)
    assert errors == ["config key 'train.steps' = 'many' (snakemake --config): expected integer",
                      "config key 'train.mask_prompt' = 'maybe' (snakemake --config): expected boolean",
                      "config key 'offline' = '0.5' (snakemake --config): expected boolean"]


def test_a_run_holds_only_the_train_keys_its_method_reads():
    """MLE and ULK sample nothing and have no warm-up; BC writes its snapshot at bc_warmup_steps:
    changing an SM value (train.alpha) changes SM runs' configs and identities alone."""
    cfg = copy.deepcopy(CONFIG)
    cfg["train"].update(alpha=0.01, gamma=0.99, ul_weight=1.0, replay_capacity=64, max_new_tokens=8)
    g = runs.Grid(cfg)
    conf = {m: g.run_config("mul", m, "random" if m in ("bc", "sm") else "none", 0.1 if m in ("bc", "sm") else 0,
                            "chi2_mix" if m == "sm" else "none", 0)["train"] for m in runs.METHODS}
    sm_only = {"alpha", "gamma", "replay_capacity", "max_new_tokens", "divergence"}
    assert sm_only <= set(conf["sm"]) and not sm_only & set(conf["mle"] | conf["bc"] | conf["ulk"])
    assert "bc_warmup_steps" in conf["bc"] and "bc_warmup_steps" in conf["sm"] and "bc_warmup_steps" not in conf["mle"]
    assert "ul_weight" in conf["ulk"] and not {"ul_weight"} & set(conf["mle"] | conf["bc"] | conf["sm"])
    assert {k: v for k, v in conf["mle"].items() if k != "method"} == {
        k: v for k, v in conf["ulk"].items() if k not in ("method", "ul_weight", "output_dir")} | {
        "output_dir": conf["mle"]["output_dir"]}
    # identities: an MLE/BC run's does not move with alpha, an SM run's does
    for method, moves in (("mle", False), ("bc", False), ("ulk", False), ("sm", True)):
        a = runs.identity({"method": method, "learning_rate": 1.0, "alpha": 0.01}, {}, "x", "t", 1)
        b = runs.identity({"method": method, "learning_rate": 1.0, "alpha": 0.5}, {}, "x", "t", 1)
        assert (a != b) is moves, method
    # a checkpoint of an earlier seqmatch (its identity holds every key) still resumes its run
    old = {"train": {"method": "mle", "learning_rate": 1.0, "alpha": 0.01, "ul_weight": 2.0}, "model": {},
           "data_sha256": "x", "tokenizer_sha256": "t", "num_processes": 1}
    now = runs.identity({"method": "mle", "learning_rate": 1.0, "alpha": 0.3, "ul_weight": 1.0}, {}, "x", "t", 1)
    assert runs.identity_diff(old, now, now["train"], " -> ") == []
    # what an SM run checks in its BC run's snapshot, the BC run's identity holds
    assert all(runs.reads("bc", k) and runs.reads("sm", k) for k in runs.WARM_START_KEYS)


@pytest.mark.parametrize("over, message", [
    ({"replicates": "nope"}, "'experiments.again.replicates' = 'nope': no study of that name"),
    ({"eta": 0.1}, "'experiments.again.eta' = 0.1: the study it replicates, experiments.study, has 0.05"),
    ({"split": "test"}, "'experiments.again.split': a replication repeats a validation study"),
    ({"settings": {"a1": {"alpha": 1.0}, "new": {"alpha": 0.5}}},
     "'experiments.again.settings': new not in experiments.study.settings"),
    ({"seeds": [0, 2, 3]}, "'experiments.again.seeds' = [0, 2, 3]: a replication has every seed of experiments.study "
                           "([0, 1]) and more; missing [1]"),
    ({"seeds": [1, 0]}, "'experiments.again.seeds' = [1, 0]: a replication has every seed"),
])
def test_a_replication_repeats_its_study_with_more_seeds(over, message):
    """experiments.<name>.replicates: the same comparison (task, noise, eta, validation rows) and
    settings of the study it names, every one of its seeds and more; anything else is one error."""
    good = {**copy.deepcopy(STUDY), "replicates": "study", "seeds": [0, 1, 2, 3], "settings": {"a1": {"alpha": 1.0}}}
    cfg = study_config()
    cfg["experiments"]["again"] = good
    assert runs.semantic_errors(cfg) == []
    cfg["experiments"]["again"] = {**good, **over}
    errors = runs.semantic_errors(cfg)
    assert len(errors) == 1 and message in errors[0], errors
