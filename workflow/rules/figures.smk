# Figures 1-3.


rule figure1:
    output:
        pdf=report("results/figure1.pdf", caption="../report/figure1.rst", category="Figures"),
        png=report("results/figure1.png", caption="../report/figure1.rst", category="Figures"),
        json="resources/figures/figure1.json",
        config="resources/figures/figure1_config.json",
    log:
        f"{LOGS}/figures/figure1.log",
    benchmark:
        f"{BENCH}/figures/figure1.tsv"
    params:
        config=job_config(
            config["figure1"], out_pdf="results/figure1.pdf", out_png="results/figure1.png",
            out_json="resources/figures/figure1.json",
        ),
    threads: threads("small")
    resources:
        **res("small"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} python -m seqmatch.toychain --config {output.config} > {log} 2>&1"


rule figure2:
    input:
        tokenizer=GRID.tokenizer_dir("text"),
    output:
        pdf=report("results/figure2.pdf", caption="../report/figure2.rst", category="Figures"),
        png=report("results/figure2.png", caption="../report/figure2.rst", category="Figures"),
    log:
        f"{LOGS}/figures/figure2.log",
    threads: threads("small")
    resources:
        **res("small"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "python -m seqmatch.figures figure2 --tokenizer {input.tokenizer} "
        "--out-pdf {output.pdf} --out-png {output.png} > {log} 2>&1"


rule figure3_csv:
    input:
        evals=evals(GRID.figure3_runs()),
        meta="resources/data/add_or_sub_in_base/meta.json",
    output:
        csv=report("results/figure3.csv", caption="../report/figure3_csv.rst", category="Figures"),
    log:
        f"{LOGS}/figures/figure3_csv.log",
    params:
        runs=GRID.figure3_runs(),
        provenance=GRID.provenance("add_or_sub_in_base"),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/figure3_csv.py"


rule figure3:
    input:
        csv="results/figure3.csv",
    output:
        pdf=report("results/figure3.pdf", caption="../report/figure3.rst", category="Figures"),
        png=report("results/figure3.png", caption="../report/figure3.rst", category="Figures"),
    log:
        f"{LOGS}/figures/figure3.log",
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/figure3_plot.py"


# Training curves of the runs behind each artifact (one PNG per run from its train_log.jsonl:
# losses, beta, V at the initial states, gradient norms and their parts, rollout statistics),
# in the report beside that artifact.
rule training_curves:
    input:
        summaries=lambda w: [f"{d}/summary.json" for d in GRID.curve_runs(w.artifact)],
    output:
        curves=report(
            directory("results/training_curves/{artifact}"),
            patterns=["{run}.png"],
            caption="../report/training_curves.rst",
            category="Training curves",
            subcategory="{artifact}",
        ),
    log:
        f"{LOGS}/figures/training_curves_{{artifact}}.log",
    benchmark:
        f"{BENCH}/figures/training_curves/{{artifact}}.tsv"
    wildcard_constraints:
        artifact="|".join(GRID.curve_artifacts()),
    params:
        runs=lambda w: GRID.curve_runs(w.artifact),
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "python -m seqmatch.figures training-curves --out-dir {output.curves} {params.runs} > {log} 2>&1"
