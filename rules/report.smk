# Aggregation and figures: cheap, so they run in the main process.


localrules:
    summarize,
    figures,
    findings,
    predictions,


rule summarize:
    input:
        evals=EVALS,
        curve_evals=CURVE_EVALS,
        # Its size is what coverage `full` stands for.
        train_problems=dataset_file(config["train_dataset"]),
    output:
        metrics="results/summary/metrics.parquet",
        curves="results/summary/curves.parquet",
    log:
        "logs/summarize/summarize.log",
    conda:
        "../envs/cpu.yaml"
    params:
        code=code("summarize"),
        curves=canon(CURVES),
    script:
        "../scripts/summarize.py"


rule statistics:
    input:
        evals=EVALS,
        teacher=TEACHER_TARGETS,
        train_problems=dataset_file(config["train_dataset"]),
        logs=train_outputs("log.parquet", methods=grid.ROLLOUT_METHODS),
        curves="results/summary/curves.parquet",
    output:
        cells="results/summary/cells.parquet",
        comparisons="results/summary/comparisons.parquet",
        mechanism="results/summary/mechanism.parquet",
        claims="results/summary/claims.parquet",
        organism="results/summary/organism.parquet",
    log:
        "logs/statistics/statistics.log",
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        **rule_resources("statistics"),
    params:
        code=code("statistics"),
        rich=canon(RICHEST),
        eval_set=canon(CLAIMS_EVAL_SET),
        organism=canon(config.get("organism")),
        worlds=canon(WORLDS),
        world_pairs=canon(world_pairs(config)),
    script:
        "../scripts/statistics.py"


# Written from the config alone, so it exists before any result does.
rule predictions:
    output:
        table="results/summary/predictions.parquet",
        text="results/predictions.md",
    log:
        "logs/predictions/predictions.log",
    conda:
        "../envs/cpu.yaml"
    params:
        code=code("predictions"),
        worlds=canon(WORLDS),
        arms=canon(ARMS),
    script:
        "../scripts/predictions.py"


rule findings:
    input:
        claims="results/summary/claims.parquet",
        mechanism="results/summary/mechanism.parquet",
        organism="results/summary/organism.parquet",
        predictions="results/predictions.md",
        gates=GATES,
        figures=FIGURES,
    output:
        report(
            "results/findings.md",
            caption="../report/findings.rst",
            category="Findings",
        ),
    log:
        "logs/findings/findings.log",
    conda:
        "../envs/cpu.yaml"
    params:
        code=code("findings"),
        grid=canon(
            {
                k: config[k]
                for k in ("models", "richness", "coverage", "seeds", "methods")
            }
        ),
    script:
        "../scripts/findings.py"


rule figures:
    input:
        cells="results/summary/cells.parquet",
        organism="results/summary/organism.parquet",
        curves="results/summary/curves.parquet",
        train_problems=dataset_file(config["train_dataset"]),
        train_logs=train_outputs("log.parquet"),
    output:
        [
            report(
                f"results/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category=category,
            )
            for name, category in FIGURE_CATEGORIES.items()
        ],
    log:
        "logs/figures/figures.log",
    conda:
        "../envs/cpu.yaml"
    params:
        code=code("figures"),
        eval_set=canon(CLAIMS_EVAL_SET),
        organism=canon(config.get("organism")),
    script:
        "../scripts/figures.py"
