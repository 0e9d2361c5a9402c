# Datasets in the normalized problem schema, and nested coverage subsets.


rule prepare_dataset:
    input:
        code=pkg("data/__init__.py", "data/loaders.py", "data/toy.py", "io.py"),
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
        spec=lambda wc: canon(config["datasets"][wc.dataset]),
    script:
        "../scripts/prepare_dataset.py"


rule coverage_subset:
    input:
        problems="results/data/{dataset}.parquet",
        code=pkg("data/coverage.py", "io.py"),
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
        batch_size=config["train_batch_size"],
    script:
        "../scripts/coverage_subset.py"
