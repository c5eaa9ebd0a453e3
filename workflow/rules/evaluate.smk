# Evaluation of trained runs: sampling with <bkspc> and the paper's metrics (seqmatch.evaluate).
# Outputs sit in the run directory next to summary.json.


rule evaluate_arithmetic:
    input:
        summary=f"{RUN}/summary.json",
        test="resources/data/{task}/test.jsonl",
    output:
        metrics=f"{RUN}/eval.json",
        generations=f"{RUN}/generations.jsonl",
    log:
        f"{LOGS}/evaluate/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/evaluate/{RUN_ID}.tsv"
    wildcard_constraints:
        task="|".join(ARITH_TASKS),
    params:
        env=job_env(),
        model_dir=lambda w, input: os.path.join(os.path.dirname(input.summary), "model"),
        n_eval=lambda w: config["tasks"][w.task]["eval"]["n_eval"],
        max_new_tokens=lambda w: config["tasks"][w.task]["eval"]["max_new_tokens"],
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate arithmetic "
        "--model-dir {params.model_dir} --test-file {input.test} --out {output.metrics} "
        "--generations {output.generations} --n {params.n_eval} "
        "--max-new-tokens {params.max_new_tokens} --seed {wildcards.seed} > {log} 2>&1"


rule evaluate_text:
    input:
        summary=f"{RUN}/summary.json",
        test="resources/data/text/test.jsonl",
    output:
        metrics=f"{RUN}/eval_{{decoding}}.json",
    log:
        f"{LOGS}/evaluate/{RUN_ID}_{{decoding}}.log",
    benchmark:
        f"{BENCH}/evaluate/{RUN_ID}_{{decoding}}.tsv"
    wildcard_constraints:
        task="text",
    params:
        env=job_env(),
        model_dir=lambda w, input: os.path.join(os.path.dirname(input.summary), "model"),
        flags=cli_flags(config["tasks"]["text"]["eval"]),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate text "
        "--model-dir {params.model_dir} --test-file {input.test} --out {output.metrics} "
        "--decoding {wildcards.decoding} {params.flags} --seed {wildcards.seed} > {log} 2>&1"


rule evaluate_translation:
    input:
        summary=f"{RUN}/summary.json",
        test="resources/data/translation/test.jsonl",
    output:
        metrics=f"{RUN}/eval.json",
    log:
        f"{LOGS}/evaluate/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/evaluate/{RUN_ID}.tsv"
    wildcard_constraints:
        task="translation",
    params:
        env=job_env(),
        model_dir=lambda w, input: os.path.join(os.path.dirname(input.summary), "model"),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate translation "
        "--model-dir {params.model_dir} --test-file {input.test} --out {output.metrics} > {log} 2>&1"


# Table 1: the best SM model of Figure 3 completes test questions whose solution starts with
# random digits (the selection happens in the job: the candidates are Figure 3's SM runs).
rule mistakes_arithmetic:
    input:
        evals=evals([dict(dir=d) for d in table1_candidates()]),
        test="resources/data/add_or_sub_in_base/test.jsonl",
    output:
        csv="resources/tables/table1_raw.csv",
    log:
        f"{LOGS}/tables/table1_raw.log",
    params:
        env=job_env(),
        picker=workflow.source_path("../scripts/best_run.py"),
        n_examples=EXP["table1"]["n_examples"],
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "best=$(python {params.picker} {input.evals} 2> {log}) && "
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate mistakes "
        "--model-dir $best/model --test-file {input.test} --out {output.csv} "
        "--n {params.n_examples} >> {log} 2>&1"


# Table 8: the SM text model completes test prompts whose last token was replaced at random.
rule mistakes_text:
    input:
        summary=f"{text_run('sm')}/summary.json",
        test="resources/data/text/test.jsonl",
    output:
        csv="resources/tables/table8_raw.csv",
    log:
        f"{LOGS}/tables/table8_raw.log",
    params:
        env=job_env(),
        model_dir=lambda w, input: os.path.join(os.path.dirname(input.summary), "model"),
        n_examples=EXP["table8"]["n_examples"],
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate text-mistakes "
        "--model-dir {params.model_dir} --test-file {input.test} --out {output.csv} "
        "--n {params.n_examples} > {log} 2>&1"
