# Aggregation and figures: cheap, so they run in the main process.


localrules:
    summarize,
    figures,
    findings,


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


rule statistics:
    input:
        evals=eval_targets(),
        teacher=teacher_targets(),
        logs=train_outputs("log.parquet", methods=("onpolicy", "grpo")),
        curves=train_outputs("curves.parquet", methods=("onpolicy", "grpo")),
        code=pkg("stats.py", "findings.py", "summary.py", "io.py"),
    output:
        cells="results/summary/cells.parquet",
        comparisons="results/summary/comparisons.parquet",
        mechanism="results/summary/mechanism.parquet",
        claims="results/summary/claims.parquet",
    params:
        rich=richest_context(),
        eval_set=config["onpolicy"]["eval_set"],
    log:
        "logs/statistics/statistics.log",
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/statistics.py"


rule findings:
    input:
        claims="results/summary/claims.parquet",
        mechanism="results/summary/mechanism.parquet",
        figures=FIGURES,
        code=pkg("findings.py"),
    output:
        "results/findings.md",
    params:
        grid=lambda wc: canon({k: config[k] for k in ("models", "richness", "coverage", "seeds", "methods")}),
    log:
        "logs/findings/findings.log",
    script:
        "../scripts/findings.py"


rule figures:
    input:
        cells="results/summary/cells.parquet",
        train_logs=train_outputs("log.parquet"),
        curves=train_outputs("curves.parquet", methods=("onpolicy", "grpo")),
        code=pkg("plots.py", "summary.py"),
    output:
        FIGURES,
    params:
        eval_set=config["onpolicy"]["eval_set"],
    log:
        "logs/figures/figures.log",
    script:
        "../scripts/figures.py"
