# Evaluation of trained runs: sampling with <bkspc> and the paper's metrics (seqmatch.evaluate).
# Outputs sit in the run directory next to summary.json, with the job's config file (the options,
# tasks.<task>.eval under the same names, and the paths).


rule evaluate_arithmetic:
    input:
        summary=f"{RUN}/summary.json",
        test="resources/data/{task}/test.jsonl",
    output:
        metrics=f"{RUN}/eval.json",
        generations=f"{RUN}/generations.jsonl",
        config=f"{RUN}/eval_config.json",
    log:
        f"{LOGS}/evaluate/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/evaluate/{RUN_ID}.tsv"
    wildcard_constraints:
        task=one_of(GRID.tasks_of_kind("qa")),
    params:
        env=job_env(),
        config=lambda w: job_config(
            GRID.eval_config(w.task), model_dir=path(f"{RUN}/model", w),
            test_file=path("resources/data/{task}/test.jsonl", w), out=path(f"{RUN}/eval.json", w),
            generations=path(f"{RUN}/generations.jsonl", w), seed=int(w.seed),
        ),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate arithmetic "
        "--config {output.config} > {log} 2>&1"


# The same evaluation on the validation rows (data.n_val, carved from training): what studies
# choose hyperparameters on, so that the test split is looked at once, for the chosen settings.
use rule evaluate_arithmetic as evaluate_arithmetic_val with:
    input:
        summary=f"{RUN}/summary.json",
        test="resources/data/{task}/val.jsonl",
    output:
        metrics=f"{RUN}/eval_val.json",
        generations=f"{RUN}/generations_val.jsonl",
        config=f"{RUN}/eval_val_config.json",
    log:
        f"{LOGS}/evaluate/{RUN_ID}_val.log",
    benchmark:
        f"{BENCH}/evaluate/{RUN_ID}_val.tsv"
    params:
        env=job_env(),
        config=lambda w: job_config(
            GRID.eval_config(w.task, split="val"), model_dir=path(f"{RUN}/model", w),
            test_file=path("resources/data/{task}/val.jsonl", w), out=path(f"{RUN}/eval_val.json", w),
            generations=path(f"{RUN}/generations_val.jsonl", w), seed=int(w.seed),
        ),


rule evaluate_text:
    input:
        summary=f"{RUN}/summary.json",
        test="resources/data/{task}/test.jsonl",
    output:
        metrics=f"{RUN}/eval_{{decoding}}.json",
        config=f"{RUN}/eval_{{decoding}}_config.json",
    log:
        f"{LOGS}/evaluate/{RUN_ID}_{{decoding}}.log",
    benchmark:
        f"{BENCH}/evaluate/{RUN_ID}_{{decoding}}.tsv"
    wildcard_constraints:
        task=one_of(GRID.tasks_of_kind("text")),
    params:
        env=job_env(),
        config=lambda w: job_config(
            GRID.eval_config(w.task), model_dir=path(f"{RUN}/model", w),
            test_file=path("resources/data/{task}/test.jsonl", w),
            out=path(f"{RUN}/eval_{{decoding}}.json", w), decoding=w.decoding, seed=int(w.seed),
        ),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate text "
        "--config {output.config} > {log} 2>&1"


rule evaluate_translation:
    input:
        summary=f"{RUN}/summary.json",
        test="resources/data/{task}/test.jsonl",
    output:
        metrics=f"{RUN}/eval.json",
        config=f"{RUN}/eval_config.json",
    log:
        f"{LOGS}/evaluate/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/evaluate/{RUN_ID}.tsv"
    wildcard_constraints:
        task=one_of(GRID.tasks_of_kind("translation")),
    params:
        env=job_env(),
        config=lambda w: job_config(
            GRID.eval_config(w.task), model_dir=path(f"{RUN}/model", w),
            test_file=path("resources/data/{task}/test.jsonl", w), out=path(f"{RUN}/eval.json", w), seed=int(w.seed),
        ),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate translation "
        "--config {output.config} > {log} 2>&1"


# Table 1: the most accurate SM model of Figure 3 (chosen in a job: the candidates are Figure 3's
# SM runs) completes test questions whose solution starts with random digits.
rule best_sm_run:
    input:
        evals=evals([dict(dir=d) for d in GRID.table1_candidates()]),
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
        config="resources/tables/table1_raw_config.json",
    log:
        f"{LOGS}/tables/table1_raw.log",
    benchmark:
        f"{BENCH}/mistakes/add_or_sub_in_base/table1_raw.tsv"
    params:
        env=job_env(),
        config=job_config(
            GRID.eval_config("add_or_sub_in_base", ["max_new_tokens"]),
            test_file="resources/data/add_or_sub_in_base/test.jsonl", out="resources/tables/table1_raw.csv",
            n_examples=EXP["table1"]["n_examples"], seed=MISTAKE_SEED,
        ),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate mistakes "
        "--config {output.config} --model-dir $(cat {input.best})/model > {log} 2>&1"


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
        config=f"{RUN}/mistakes_config.json",
    log:
        f"{LOGS}/mistakes/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/mistakes/{RUN_ID}.tsv"
    wildcard_constraints:
        task=runs.MISTAKES_TASK,
    params:
        env=job_env(),
        config=lambda w: job_config(
            GRID.eval_config(w.task, ["max_new_tokens"]), model_dir=path(f"{RUN}/model", w),
            test_file=path("resources/data/{task}/test.jsonl", w), out=path(f"{RUN}/mistakes.csv", w),
            summary=path(f"{RUN}/mistakes.json", w), n_examples=EXP["table1"]["n_recovery"], seed=MISTAKE_SEED,
        ),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate mistakes "
        "--config {output.config} > {log} 2>&1"


# Table 8: the SM text model completes test prompts whose last token was replaced at random.
rule mistakes_text:
    input:
        summary=f"{GRID.text_run('sm')}/summary.json",
        test="resources/data/text/test.jsonl",
    output:
        csv="resources/tables/table8_raw.csv",
        config="resources/tables/table8_raw_config.json",
    log:
        f"{LOGS}/tables/table8_raw.log",
    benchmark:
        f"{BENCH}/mistakes/text/table8_raw.tsv"
    params:
        env=job_env(),
        config=job_config(
            GRID.eval_config("text", ["prompt_tokens", "new_tokens", "batch_size"]),
            model_dir=f"{GRID.text_run('sm')}/model", test_file="resources/data/text/test.jsonl",
            out="resources/tables/table8_raw.csv", n_examples=EXP["table8"]["n_examples"],
        ),
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} {params.env} python -m seqmatch.evaluate text-mistakes "
        "--config {output.config} > {log} 2>&1"
