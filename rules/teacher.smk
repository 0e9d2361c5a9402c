# Teacher traces: the model answering with a richness-dependent context in its prompt.


def teacher_inputs(wc):
    inputs = {"model": model_input(wc), "subset": subset_file(wc.coverage, wc.seed)}
    if wc.richness == "regen":
        # The regen context is a response the model produced while given the solution.
        inputs["demos"] = f"results/{wc.model}/teacher/solution/c{wc.coverage}_s{wc.seed}.parquet"
    return inputs


rule teacher_traces:
    input:
        unpack(teacher_inputs),
        code=GENERATION_CODE + pkg("teacher.py"),
    output:
        "results/{model}/teacher/{richness}/c{coverage}_s{seed}.parquet",
    params:
        model_path=lambda wc: model_dir(wc.model),
        model=lambda wc: model_slice(wc.model),
        teacher=canon(config["teacher"]),
        prompts=lambda wc: canon(config["prompts"]),
        grading=canon(config["grading"]),
        generation=canon(config["generation"]),
    log:
        "logs/teacher_traces/{model}/{richness}/c{coverage}_s{seed}.log",
    benchmark:
        "benchmarks/teacher_traces/{model}/{richness}/c{coverage}_s{seed}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1,
    script:
        "../scripts/teacher_traces.py"
