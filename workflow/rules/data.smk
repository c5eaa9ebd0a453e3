# Data: generate or download each task's train/test split, then its tokenizer.


rule arithmetic_data:
    output:
        train="resources/data/{arith_task}/train.jsonl",
        test="resources/data/{arith_task}/test.jsonl",
        meta="resources/data/{arith_task}/meta.json",
    log:
        f"{LOGS}/data/{{arith_task}}.log",
    params:
        env=job_env(),
        flags=lambda w: data_flags(w.arith_task),
        out_dir=lambda w, output: os.path.dirname(output.train),
    threads: threads("data")
    resources:
        **res("data"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "{params.env} python -m seqmatch.data arithmetic --task {wildcards.arith_task} "
        "--out-dir {params.out_dir} {params.flags} > {log} 2>&1"


rule text_data:
    output:
        train="resources/data/text/train.jsonl",
        test="resources/data/text/test.jsonl",
        meta="resources/data/text/meta.json",
    log:
        f"{LOGS}/data/text.log",
    params:
        env=job_env(),
        flags=data_flags("text"),
        out_dir=lambda w, output: os.path.dirname(output.train),
    threads: threads("data")
    resources:
        **res("data"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "{params.env} python -m seqmatch.data text --out-dir {params.out_dir} {params.flags} > {log} 2>&1"


rule translation_data:
    input:
        unpack(translation_data_inputs),
    output:
        train="resources/data/translation/train.jsonl",
        test="resources/data/translation/test.jsonl",
        meta="resources/data/translation/meta.json",
    log:
        f"{LOGS}/data/translation.log",
    params:
        env=job_env(),
        flags=data_flags("translation"),
        tokenizer=translation_tokenizer_flag,
        out_dir=lambda w, output: os.path.dirname(output.train),
    threads: threads("data")
    resources:
        **res("data"),
    conda:
        "../envs/seqmatch.yaml"
    shell:
        "{params.env} python -m seqmatch.data translation --out-dir {params.out_dir} "
        "{params.flags} {params.tokenizer} > {log} 2>&1"


if config["tokenizer"]["name_or_path"]:

    rule pretrained_tokenizer:
        output:
            directory("resources/tokenizers/pretrained"),
        log:
            f"{LOGS}/tokenizers/pretrained.log",
        params:
            name=config["tokenizer"]["name_or_path"],
        threads: threads("data")
        resources:
            **res("data"),
        conda:
            "../envs/seqmatch.yaml"
        script:
            "../scripts/pretrained_tokenizer.py"

else:

    rule bpe_tokenizer:
        input:
            corpus="resources/data/{task}/train.jsonl",
        output:
            directory("resources/tokenizers/{task}"),
        log:
            f"{LOGS}/tokenizers/{{task}}.log",
        params:
            env=job_env(),
            vocab_size=lambda w: config["tasks"][w.task]["vocab_size"],
        threads: threads("data")
        resources:
            **res("data"),
        conda:
            "../envs/seqmatch.yaml"
        shell:
            "{params.env} python -m seqmatch.data tokenizer --corpus {input.corpus} "
            "--vocab-size {params.vocab_size} --out-dir {output} > {log} 2>&1"
