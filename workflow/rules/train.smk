# Training: one rule for every (task, method, noise, eta, divergence, seed). SM runs start with
# bc_warmup_steps of BC (paper App. E), exactly the first steps of the BC run of the same seed,
# noise and eta: its bc_warmup job trains them once and writes the bc_warmup/ snapshot, which
# every SM run of that BC run (one per divergence) starts from; the BC run itself resumes from
# the checkpoint the job left.
# The job writes the run's config (every SequenceMatchConfig/ModelConfig value, named as in config.yaml;
# seqmatch.runs) to run_config.json and trains from it; a changed value changes the job's params,
# so the run is retrained. summary.json is written last by seqmatch.train and marks a finished
# run; model/ and checkpoint/ sit beside it (a retried job resumes from checkpoint/).


rule bc_warmup:
    input:
        train=lambda w: f"{GRID.data_dir(w.task)}/train.jsonl",
        tokenizer=lambda w: GRID.tokenizer_dir(w.task),
    output:
        done=f"{RUN}/{runs.WARMUP_DONE}",
        config=f"{RUN}/bc_warmup_config.json",
    log:
        f"{LOGS}/bc_warmup/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/bc_warmup/{RUN_ID}.tsv"
    wildcard_constraints:
        method="bc",
        divergence=f"none(\\{runs.SETTING_SEP}{runs.SETTING_NAME})?",
    params:
        env=job_env(),
        launcher=train_launcher,
        config=lambda w: job_config(run_config(w, stop_after_warmup=True)),
    threads: threads("train")
    resources:
        **res("train"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} {params.env} "
        "{params.launcher} --config {output.config} > {log} 2>&1"


rule train:
    input:
        train=lambda w: f"{GRID.data_dir(w.task)}/train.jsonl",
        tokenizer=lambda w: GRID.tokenizer_dir(w.task),
        warmup=warmup_input,
    output:
        summary=f"{RUN}/summary.json",
        config=f"{RUN}/run_config.json",
    log:
        f"{LOGS}/train/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/train/{RUN_ID}.tsv"
    params:
        env=job_env(),
        launcher=train_launcher,
        config=lambda w: job_config(run_config(w)),
    threads: threads("train")
    resources:
        **res("train"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} {params.env} "
        "{params.launcher} --config {output.config} > {log} 2>&1"
