# Data: generate or download each task's train/val/test split, then its tokenizer. Each job's options
# are tasks.<task>.data (seqmatch.runs.Grid.data_config) in a config file beside its outputs.


rule data:
    input:
        unpack(data_inputs),
    output:
        train="resources/data/{task}/train.jsonl",
        val="resources/data/{task}/val.jsonl",  # data.n_val rows carved from training (empty if 0)
        test="resources/data/{task}/test.jsonl",
        meta="resources/data/{task}/meta.json",
        config="resources/data/{task}/data_config.json",
    log:
        f"{LOGS}/data/{{task}}.log",
    benchmark:
        f"{BENCH}/data/{{task}}.tsv"
    params:
        env=job_env(),
        command=lambda w: GRID.data_command(w.task),
        config=lambda w: job_config(
            GRID.data_config(w.task), out_dir=GRID.data_dir(w.task), **translation_data_inputs(w)
        ),
    threads: threads("data")
    resources:
        **res("data"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "{params.env} python -m seqmatch.data {params.command} --config {output.config} > {log} 2>&1 "
        "|| {{ tail -n 1 {log} >&2; exit 1; }}"  # the error line (bad data, ...) on the terminal, not only "check log"


# A pretrained tokenizer (tokenizer.name_or_path, or a pretrained model's own) is saved once per
# source with <bkspc> added: resources/tokenizers/pretrained (the global one), pretrained-<task>
# (a task's own model; seqmatch.runs.Grid.tokenizer_dir). Other tasks train a BPE tokenizer.
rule pretrained_tokenizer:
    input:
        # a local tokenizer directory's files: editing them reruns the job ([] for a hub id)
        lambda w: GRID.local_files(GRID.pretrained_tokenizers()[w.pretrained]),
    output:
        directory("resources/tokenizers/{pretrained}"),
    log:
        f"{LOGS}/tokenizers/{{pretrained}}.log",
    benchmark:
        f"{BENCH}/tokenizers/{{pretrained}}.tsv"
    wildcard_constraints:
        pretrained=one_of(GRID.pretrained_tokenizers()),
    params:
        name=lambda w: GRID.pretrained_tokenizers()[w.pretrained],
    threads: threads("data")
    resources:
        **res("data"),
    conda:
        "../envs/seqmatch.yaml"
    script:
        "../scripts/pretrained_tokenizer.py"


rule bpe_tokenizer:
    input:
        corpus="resources/data/{task}/train.jsonl",
    output:
        tokenizer=directory("resources/tokenizers/{task}"),
        config="resources/tokenizers/{task}_config.json",
    log:
        f"{LOGS}/tokenizers/{{task}}.log",
    benchmark:
        f"{BENCH}/tokenizers/{{task}}.tsv"
    wildcard_constraints:
        task=one_of(GRID.bpe_tasks()),
    params:
        env=job_env(),
        config=lambda w: job_config(
            {"vocab_size": config["tasks"][w.task]["vocab_size"]},
            corpus=[path("resources/data/{task}/train.jsonl", w)],
            out_dir=path("resources/tokenizers/{task}", w),
        ),
    threads: threads("data")
    resources:
        **res("data"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "printf '%s\\n' {params.config:q} > {output.config} && "
        "{params.env} python -m seqmatch.data tokenizer --config {output.config} > {log} 2>&1"
