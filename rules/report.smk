# Aggregation and figures: cheap, so they run in the main process.


localrules:
    summarize,
    figures,


rule summarize:
    input:
        evals=eval_targets(),
        code=pkg("summary.py", "io.py"),
    output:
        "results/summary/metrics.parquet",
    log:
        "logs/summarize/summarize.log",
    script:
        "../scripts/summarize.py"


rule figures:
    input:
        metrics="results/summary/metrics.parquet",
        train_logs=train_outputs("log.parquet"),
        curves=train_outputs("curves.parquet", methods=("onpolicy", "grpo")),
        code=pkg("plots.py", "summary.py"),
    output:
        FIGURES,
    log:
        "logs/figures/figures.log",
    script:
        "../scripts/figures.py"
