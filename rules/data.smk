# Datasets in the normalized problem schema, and nested coverage subsets.


rule prepare_dataset:
    input:
        code=pkg("data/__init__.py", "data/loaders.py", "data/toy.py", "io.py"),
    output:
        "results/data/{dataset}.parquet",
    params:
        spec=lambda wc: canon(config["datasets"][wc.dataset]),
    log:
        "logs/prepare_dataset/{dataset}.log",
    resources:
        mem_mb=2000,
    script:
        "../scripts/prepare_dataset.py"


rule coverage_subset:
    input:
        problems="results/data/{dataset}.parquet",
        code=pkg("data/coverage.py", "io.py"),
    output:
        "results/subsets/{dataset}/c{coverage}_s{seed}.parquet",
    params:
        batch_size=config["train_batch_size"],
    log:
        "logs/coverage_subset/{dataset}/c{coverage}_s{seed}.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/coverage_subset.py"
