# Aggregation and figures: cheap, so they run in the main process.


# The figures this grid has something to draw in (name -> report category).
FIGURE_CATEGORIES = {
    **({"organism": "1. Headline"} if WORLDS else {}),
    "accuracy_by_richness": "2. Arms against their base model",
    "length_by_richness": "2. Arms against their base model",
    "epistemic_by_richness": "2. Arms against their base model",
    **(
        {"training_curves": "3. Training"}
        if set(config["methods"]) & set(grid.ROLLOUT_METHODS)
        else {}
    ),
    **({"train_loss": "3. Training"} if "sft" in config["methods"] else {}),
    **(
        {"factorial_ood_vs_epistemic": "4. Uncertainty ablation"}
        if "onpolicy" in config["methods"]
        and set(config["onpolicy"]["ablations"]) - {"standard"}
        else {}
    ),
}
FIGURES = expand("results/figures/{name}.png", name=FIGURE_CATEGORIES)


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
        draws="results/summary/draws.parquet",
        draw_tests="results/summary/draw_tests.parquet",
        checking="results/summary/checking.parquet",
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
        draws=canon(pretrained_draws(config)),
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
        draws="results/summary/draws.parquet",
        draw_tests="results/summary/draw_tests.parquet",
        checking="results/summary/checking.parquet",
        predictions="results/predictions.md",
        gates=GATES,
        figures=FIGURES,
    output:
        page=report(
            "results/findings.md",
            caption="../report/findings.rst",
            category="1. Headline",
        ),
        # The report's front page (report/workflow.rst) includes it.
        headline="results/headline.rst",
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
        worlds=canon(WORLDS),
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
        worlds=canon(WORLDS),
    script:
        "../scripts/figures.py"
