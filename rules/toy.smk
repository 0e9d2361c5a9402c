# The toy world's model organism: tokenizer + ~1M-parameter Qwen2, pretrained on CPU.


rule pretrain_toy:
    input:
        # Held-out problems are excluded from pretraining, so "test" and "ood" stay unseen.
        problems=dataset_file(config["train_dataset"]),
    output:
        model=directory("results/models/{model}/hf"),
        log_table="results/models/{model}/pretrain_log.parquet",
    log:
        "logs/pretrain_toy/{model}.log",
    # Shared between workflows with `--cache` (the result depends only on inputs, code and params).
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    threads: 2
    resources:
        **rule_resources("pretrain_toy"),
    params:
        code=code("pretrain_toy"),
        # A function: only toy-world configs have toy_pretrain.
        spec=lambda wc: canon(toy_pretrain_spec()),
        prompts=canon(config["prompts"]),
    script:
        "../scripts/pretrain_toy.py"
