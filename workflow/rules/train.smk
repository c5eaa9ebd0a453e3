# Training: one rule for every (task, method, noise, eta, divergence, seed). SM runs start with
# bc_warmup_steps of BC (paper App. E): taken from the BC run of the same seed, noise and eta
# (its bc_warmup/ snapshot) when the grid has that run, else trained inside the SM run.
# summary.json is written last by seqmatch.train and marks a finished run; model/ and checkpoint/
# sit beside it (a retried job resumes from checkpoint/).


rule train:
    input:
        train=lambda w: f"{data_dir(w.task)}/train.jsonl",
        tokenizer=lambda w: tokenizer_dir(w.task),
        warm_start=warm_start_input,
    output:
        summary=f"{RUN}/summary.json",
    log:
        f"{LOGS}/train/{RUN_ID}.log",
    benchmark:
        f"{BENCH}/train/{RUN_ID}.tsv"
    params:
        env=job_env(),
        launcher=train_launcher,
        flags=train_flags,
        out_dir=lambda w, output: os.path.dirname(output.summary),
    threads: threads("train")
    resources:
        **res("train"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} {params.env} "
        "{params.launcher} --out-dir {params.out_dir} --train-file {input.train} "
        "--tokenizer {input.tokenizer} --method {wildcards.method} {params.flags} > {log} 2>&1"
