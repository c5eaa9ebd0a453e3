# Tables 1-8, the App. G.1 divergence ablation and the scorecard: small scripts that assemble the
# evaluations and training summaries into results/*.csv (every row names what produced it).


rule annotate_table:
    input:
        csv="resources/tables/{annotated}_raw.csv",
        meta=lambda w: f"{GRID.data_dir('add_or_sub_in_base' if w.annotated == 'table1' else 'text')}/meta.json",
    output:
        csv=report("results/{annotated}.csv", caption="../report/annotated_table.rst", category="Tables"),
    log:
        f"{LOGS}/tables/{{annotated}}.log",
    params:
        provenance=lambda w: GRID.provenance("add_or_sub_in_base" if w.annotated == "table1" else "text"),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/annotate_table.py"


rule table1_recovery:
    input:
        mistakes=evals(GRID.table1_recovery_runs(), "mistakes.json"),
        evals=evals(GRID.table1_recovery_runs()),
        meta="resources/data/add_or_sub_in_base/meta.json",
    output:
        csv=report("results/table1_recovery.csv", caption="../report/table1_recovery.rst", category="Tables"),
    log:
        f"{LOGS}/tables/table1_recovery.log",
    params:
        runs=GRID.table1_recovery_runs(),
        provenance=GRID.provenance("add_or_sub_in_base"),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/recovery_table.py"


rule table2:
    input:
        evals=[r["eval"] for r in GRID.table2_runs()],
        meta="resources/data/text/meta.json",
    output:
        csv=report("results/table2.csv", caption="../report/table2.rst", category="Tables"),
    log:
        f"{LOGS}/tables/table2.log",
    params:
        runs=GRID.table2_runs(),
        provenance=GRID.provenance("text"),
        eval_settings=config["tasks"]["text"]["eval"],
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/table2.py"


rule table3:
    input:
        summaries=evals(GRID.timing_runs("table3"), "summary.json"),
        meta="resources/data/text/meta.json",
    output:
        csv=report("results/table3.csv", caption="../report/table3.rst", category="Tables"),
    log:
        f"{LOGS}/tables/table3.log",
    params:
        runs=GRID.timing_runs("table3"),
        provenance=GRID.provenance("text"),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/timing_table.py"


rule table4:
    input:
        summaries=evals(GRID.timing_runs("table4"), "summary.json"),
        meta="resources/data/add_or_sub_in_base/meta.json",
    output:
        csv=report("results/table4.csv", caption="../report/table4.rst", category="Tables"),
    log:
        f"{LOGS}/tables/table4.log",
    params:
        runs=GRID.timing_runs("table4"),
        provenance=GRID.provenance("add_or_sub_in_base"),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/timing_table.py"


# Grid tables, experiments.<name> blocks with a task: the runs of a grid (seqmatch.runs.Grid.
# grid_table_runs) tabulated by the block's script; without one, an accuracy table (Tables 5-7:
# test accuracy, BLEU for translation, of MLE, BC and SM at each eta).
rule grid_table:
    input:
        runs=lambda w: GRID.grid_table_inputs(w.grid_table),
        meta=lambda w: f"{GRID.data_dir(EXP[w.grid_table]['task'])}/meta.json",
        script=lambda w: GRID.grid_table_script(w.grid_table),
    output:
        csv=report("results/{grid_table}.csv", caption="../report/grid_table.rst", category="Tables"),
    log:
        f"{LOGS}/tables/{{grid_table}}.log",
    params:
        runs=lambda w: GRID.grid_table_runs(w.grid_table),
        experiment=lambda w: {k: v for k, v in EXP[w.grid_table].items() if k != "caption"},
        metric=lambda w: GRID.metric(EXP[w.grid_table]["task"]),
        provenance=lambda w: GRID.provenance(EXP[w.grid_table]["task"]),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/grid_table.py"


# SM − BC and BC − MLE on Figure 3's runs, paired by seed and question, with bootstrap intervals
# (clean test accuracy and Table 1's mistake recovery).
rule paired_differences:
    input:
        generations=evals(GRID.figure3_runs(), "generations.jsonl"),
        mistakes=evals(GRID.table1_recovery_runs(), "mistakes.json"),
        meta="resources/data/add_or_sub_in_base/meta.json",
    output:
        csv=report("results/differences.csv", caption="../report/differences.rst", category="Tables"),
        png=report("results/differences.png", caption="../report/differences.rst", category="Figures"),
    log:
        f"{LOGS}/tables/differences.log",
    params:
        runs=GRID.figure3_runs(),
        n_bootstrap=EXP["figure3"].get("n_bootstrap", 10000),
        provenance=GRID.provenance("add_or_sub_in_base"),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/paired_differences.py"


rule ablation_divergence:
    input:
        evals=evals(GRID.ablation_runs()),
        meta="resources/data/add_or_sub_in_base/meta.json",
    output:
        csv=report(
            "results/ablation_divergence.csv",
            caption="../report/ablation_divergence.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/tables/ablation_divergence.log",
    params:
        runs=GRID.ablation_runs(),
        provenance=GRID.provenance("add_or_sub_in_base"),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/ablation_table.py"


# The README's results section: small markdown tables of the headline numbers of results/ (spliced
# into README.md by `python workflow/scripts/results_summary.py --readme README.md results/summary.md`).
rule results_summary:
    input:
        figure3="results/figure3.csv",
        differences="results/differences.csv",
        table1_recovery="results/table1_recovery.csv",
        table2="results/table2.csv",
        table3="results/table3.csv",
        table4="results/table4.csv",
        accuracy=[f"results/{t}.csv" for t in GRID.accuracy_tables()],
        ablation="results/ablation_divergence.csv",
        time_budget="results/time_budget.csv",
    output:
        md=report("results/summary.md", caption="../report/summary.rst", category="Summary"),
    log:
        f"{LOGS}/tables/summary.log",
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/results_summary.py"


# Where the default target's compute goes (README "Time budget"): the job benchmarks summed per
# rule family, and the run's span. It runs after every other artifact (its inputs), so the span
# covers the whole run when the run started from nothing.
rule time_budget:
    input:
        artifacts=lambda w: [f for f in all_artifacts() if f not in ("results/time_budget.csv", "results/summary.md")],
    output:
        csv=report("results/time_budget.csv", caption="../report/time_budget.rst", category="Summary"),
    log:
        f"{LOGS}/tables/time_budget.log",
    params:
        benchmarks=BENCH,
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/time_budget.py"


rule scorecard:
    input:
        tables=[f"results/table{i}.csv" for i in range(1, 9)],  # the paper's tables (paper_numbers.yaml)
        ablation="results/ablation_divergence.csv",
        paper="workflow/scripts/paper_numbers.yaml",
    output:
        csv=report("results/scorecard.csv", caption="../report/scorecard.rst", category="Scorecard"),
        md=report("results/scorecard.md", caption="../report/scorecard.rst", category="Scorecard"),
    log:
        f"{LOGS}/tables/scorecard.log",
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/scorecard.py"


# Studies, experiments.<name> blocks with settings (seqmatch.runs.Grid.study_runs): every setting's
# SM runs beside the BC and MLE runs they are paired with, scored on the validation rows. Not in
# the default target: `snakemake --cores all results/<name>.csv`.
rule study:
    input:
        evals=lambda w: evals(GRID.study_runs(w.study), study_file(w.study, "eval{}.json")),
        generations=lambda w: evals(GRID.study_runs(w.study), study_file(w.study, "generations{}.jsonl")),
        summaries=lambda w: evals(GRID.study_runs(w.study), "summary.json"),
        meta=lambda w: f"{GRID.data_dir(EXP[w.study]['task'])}/meta.json",
    output:
        csv=report("results/{study}.csv", caption="../report/study.rst", category="Studies"),
        png=report("results/{study}.png", caption="../report/study.rst", category="Studies"),
        md="results/{study}.md",
    log:
        f"{LOGS}/tables/{{study}}.log",
    params:
        runs=lambda w: GRID.study_runs(w.study),
        split=lambda w: study_split(w.study),
        settings=lambda w: EXP[w.study]["settings"],
        n_bootstrap=lambda w: EXP[w.study].get("n_bootstrap", 10000),
        provenance=lambda w: GRID.provenance(EXP[w.study]["task"]),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/study_table.py"


# The answer to "does SequenceMatch beat BC here?" (README): the studies (settings chosen on the
# validation rows) and the chosen setting's paired test differences (a split: test study that has
# it, else Figure 3's at the default setting), by the rule of workflow/scripts/outcome.py. Built
# with the studies: `snakemake --cores all results/outcome.md`.
rule outcome:
    input:
        differences="results/differences.csv",
        studies=study_csvs("val"),
        tests=study_csvs("test"),
    output:
        md="results/outcome.md",
    log:
        f"{LOGS}/tables/outcome.log",
    params:
        chosen={name: GRID.default_setting(name) for name in GRID.studies()},
        replicates=study_replicates(),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/outcome.py"


# README "Speed": the overhead ratios of `python -m seqmatch.bench` on this machine (on request:
# `snakemake --cores all results/bench.md`, about a minute; every ratio is a timing of two sides
# in one process, so run it on a machine nothing else uses). A change to the package reruns it.
rule bench:
    input:
        code=package_sources(),
    output:
        json="results/bench.json",
    log:
        f"{LOGS}/bench.log",
    threads: 2
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m seqmatch.bench --out {output.json} > {log} 2>&1"


rule bench_table:
    input:
        json="results/bench.json",
    output:
        md="results/bench.md",
    log:
        f"{LOGS}/tables/bench.log",
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/bench_table.py"
