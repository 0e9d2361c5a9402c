# Evaluation: n samples per problem for the base model, every trained model, and the rollout
# methods' checkpoints (variant `…/step{k}`), so eval settings never re-run training.


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        "results/{model}/eval/{variant}/{eval_set}.parquet",
    log:
        "logs/evaluate/{model}/{variant}/{eval_set}.log",
    # Shared between workflows with `--cache` (the result depends only on inputs, code and params).
    cache: "omit-software"
    conda:
        MODEL_ENV
    threads: 1
    resources:
        **rule_resources("evaluate"),
    params:
        code=lambda wc: code("evaluate", wc),
        model=lambda wc: model_slice(wc.model),
        eval_set=lambda wc: canon(config["eval_sets"][wc.eval_set]),
        # The student's prompt only: a teacher prompt edit re-runs no evaluation.
        student_prompt=canon(config["prompts"]["student"]),
        grading=canon(config["grading"]),
        generation=canon(config["generation"]),
    script:
        "../scripts/evaluate.py"
