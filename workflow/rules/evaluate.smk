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
        flags=lambda w: eval_flags(w.task),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate arithmetic "
        "--model-dir {params.model_dir} --test-file {input.test} --out {output.metrics} "
        "--generations {output.generations} {params.flags} --seed {wildcards.seed} > {log} 2>&1"


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
        flags=eval_flags("text"),
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
        flags=eval_flags("translation"),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate translation "
        "--model-dir {params.model_dir} --test-file {input.test} --out {output.metrics} "
        "{params.flags} --seed {wildcards.seed} > {log} 2>&1"


# Table 1: the most accurate SM model of Figure 3 (chosen in a job: the candidates are Figure 3's
# SM runs) completes test questions whose solution starts with random digits.
rule best_sm_run:
    input:
        evals=evals([dict(dir=d) for d in table1_candidates()]),
    output:
        best="resources/tables/table1_best_run.txt",
    log:
        f"{LOGS}/tables/table1_best_run.log",
    localrule: True
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/best_run.py"


rule mistakes_arithmetic:
    input:
        best="resources/tables/table1_best_run.txt",
        test="resources/data/add_or_sub_in_base/test.jsonl",
    output:
        csv="resources/tables/table1_raw.csv",
    log:
        f"{LOGS}/tables/table1_raw.log",
    params:
        env=job_env(),
        n_examples=EXP["table1"]["n_examples"],
        seed=MISTAKE_SEED,
        max_new_tokens=config["tasks"]["add_or_sub_in_base"]["eval"]["max_new_tokens"],
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate mistakes "
        "--model-dir $(cat {input.best})/model --test-file {input.test} --out {output.csv} "
        "--n {params.n_examples} --seed {params.seed} --max-new-tokens {params.max_new_tokens} > {log} 2>&1"


# Table 1's recovery metric: every Figure 3 run completes the first n_recovery test questions with
# the same wrong solution starts; the JSON has the shares with a correct final state and with
# <bkspc> first (results/table1_recovery.csv), the CSV the completions.
rule mistakes_recovery:
    input:
        summary=f"{RUN}/summary.json",
        test="resources/data/{task}/test.jsonl",
    output:
        metrics=f"{RUN}/mistakes.json",
        csv=f"{RUN}/mistakes.csv",
    log:
        f"{LOGS}/mistakes/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/mistakes/{RUN_ID}.tsv"
    wildcard_constraints:
        task="add_or_sub_in_base",
    params:
        env=job_env(),
        model_dir=lambda w, input: os.path.join(os.path.dirname(input.summary), "model"),
        n=EXP["table1"]["n_recovery"],
        seed=MISTAKE_SEED,
        max_new_tokens=config["tasks"]["add_or_sub_in_base"]["eval"]["max_new_tokens"],
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate mistakes "
        "--model-dir {params.model_dir} --test-file {input.test} --out {output.csv} "
        "--summary {output.metrics} --n {params.n} --seed {params.seed} "
        "--max-new-tokens {params.max_new_tokens} > {log} 2>&1"


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
        flags=eval_flags("text", table8=True),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate text-mistakes "
        "--model-dir {params.model_dir} --test-file {input.test} --out {output.csv} "
        "--n {params.n_examples} {params.flags} > {log} 2>&1"
