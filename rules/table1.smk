# The paper's Table 1: responses under each context on problems the base model finds hard.
# Runs when the config has a `table1:` section.


rule table1_traces:
    input:
        problems=lambda wc: dataset_file(config["table1"]["dataset"]),
        candidates=lambda wc: (
            [] if wc.richness == "none" else f"results/{wc.model}/table1/none.parquet"
        ),
        demos=lambda wc: (
            f"results/{wc.model}/table1/solution.parquet"
            if wc.richness == "regen"
            else []
        ),
        model=model_input,
    output:
        "results/{model}/table1/{richness}.parquet",
    log:
        "logs/table1_traces/{model}/{richness}.log",
    # Shared between workflows with `--cache` (the result depends only on inputs, code and params).
    cache: "omit-software"
    conda:
        MODEL_ENV
    threads: 1
    resources:
        **rule_resources("teacher_traces"),
    params:
        code=lambda wc: code("table1_traces", wc),
        model=lambda wc: model_slice(wc.model),
        table1=canon(config.get("table1")),
        prompts=canon(config["prompts"]),
        grading=canon(config["grading"]),
        generation=canon(config["generation"]),
    script:
        "../scripts/table1_traces.py"


rule table1:
    input:
        traces=table1_targets(),
    output:
        table="results/summary/table1.parquet",
        markdown="results/table1.md",
    log:
        "logs/table1/table1.log",
    conda:
        "../envs/cpu.yaml"
    params:
        code=code("table1"),
        table1=canon(config.get("table1")),
        sources=canon({m: config["models"][m]["source"] for m in config["models"]}),
    script:
        "../scripts/table1.py"
