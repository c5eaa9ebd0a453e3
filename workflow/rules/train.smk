# Training: one rule for every (task, method, noise, eta, divergence, seed). SM runs start with
# bc_warmup_steps of BC (paper App. E): taken from the BC run of the same seed, noise and eta
# (its bc_warmup/ snapshot) when the grid has that run, else trained inside the SM run.
# The job writes the run's config (every TrainConfig/ModelConfig value, named as in config.yaml;
# seqmatch.runs) to run_config.json and trains from it; a changed value changes the job's params,
# so the run is retrained. summary.json is written last by seqmatch.train and marks a finished
# run; model/ and checkpoint/ sit beside it (a retried job resumes from checkpoint/).


rule train:
    input:
        train=lambda w: f"{GRID.data_dir(w.task)}/train.jsonl",
        tokenizer=lambda w: GRID.tokenizer_dir(w.task),
        warm_start=warm_start_input,
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
