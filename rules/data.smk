# Datasets in the normalized problem schema, and nested coverage subsets.


rule prepare_dataset:
    output:
        "results/data/{dataset}.parquet",
    log:
        "logs/prepare_dataset/{dataset}.log",
    # Shared between workflows with `--cache` (the result depends only on inputs, code and params).
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    resources:
        **rule_resources("prepare_dataset"),
    params:
        code=code("prepare_dataset"),
        spec=lambda wc: canon(config["datasets"][wc.dataset]),
    script:
        "../scripts/prepare_dataset.py"


rule coverage_subset:
    input:
        problems=lambda wc: dataset_file(
            config["coverage_files"].get(wc.coverage, wc.dataset)
        ),
    output:
        "results/subsets/{dataset}/c{coverage}_s{seed}.parquet",
    log:
        "logs/coverage_subset/{dataset}/c{coverage}_s{seed}.log",
    # Shared between workflows with `--cache` (the result depends only on inputs, code and params).
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    resources:
        **rule_resources("coverage_subset"),
    params:
        code=code("coverage_subset"),
        batch_size=canon(config["train_batch_size"]),
        coverage_file=lambda wc: canon(config["coverage_files"].get(wc.coverage)),
    script:
        "../scripts/coverage_subset.py"
