# Teacher traces: the model answering with a richness-dependent context in its prompt.


rule teacher_traces:
    input:
        unpack(teacher_inputs),
    output:
        "results/{model}/teacher/{richness}/c{coverage}_s{seed}.parquet",
    log:
        "logs/teacher_traces/{model}/{richness}/c{coverage}_s{seed}.log",
    # Shared between workflows with `--cache` (the result depends only on inputs, code and params).
    cache: "omit-software"
    conda:
        MODEL_ENV
    threads: 1
    resources:
        **rule_resources("teacher_traces"),
    params:
        code=lambda wc: code("teacher_traces", wc),
        model=lambda wc: model_slice(wc.model),
        teacher=canon(config["teacher"]),
        prompts=canon(config["prompts"]),
        grading=canon(config["grading"]),
        generation=canon(config["generation"]),
    script:
        "../scripts/teacher_traces.py"
