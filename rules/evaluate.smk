# Evaluation: n samples per problem for the base model and every trained adapter.


def eval_inputs(wc):
    v = parse_variant(wc.variant)
    es = config["eval_sets"][wc.eval_set]
    inputs = {"model": model_input(wc)}
    if es["split"] == "subset":
        inputs["problems"] = subset_file(v["coverage"], v["seed"])
    else:
        inputs["problems"] = dataset_file(es["dataset"])
    if v["method"] != "base":
        inputs["adapter"] = f"results/{wc.model}/train/{wc.variant}/adapter"
    return inputs


rule evaluate:
    input:
        unpack(eval_inputs),
        code=GENERATION_CODE + pkg("evaluate.py"),
    output:
        "results/{model}/eval/{variant}/{eval_set}.parquet",
    params:
        model_path=lambda wc: model_dir(wc.model),
        model=lambda wc: model_slice(wc.model),
        eval_set=lambda wc: canon(config["eval_sets"][wc.eval_set]),
        prompts=lambda wc: canon(config["prompts"]["student"]),
        grading=canon(config["grading"]),
        generation=canon(config["generation"]),
    log:
        "logs/evaluate/{model}/{variant}/{eval_set}.log",
    benchmark:
        "benchmarks/evaluate/{model}/{variant}/{eval_set}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1,
    script:
        "../scripts/evaluate.py"
