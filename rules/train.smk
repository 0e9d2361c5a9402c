# Training: offline self-distillation (sft), and the rollout methods (onpolicy, grpo). Each writes
# the trained weights (a LoRA adapter, or the whole model) and a per-step log; the rollout methods
# also write checkpoints every `checkpoint_every` steps, evaluated by the evaluate rule.


rule train_sft:
    input:
        unpack(sft_inputs),
    output:
        adapter=directory(
            "results/{model}/train/sft/{richness}/{ablation}/c{coverage}_s{seed}/adapter"
        ),
        log_table="results/{model}/train/sft/{richness}/{ablation}/c{coverage}_s{seed}/log.parquet",
        selection="results/{model}/train/sft/{richness}/{ablation}/c{coverage}_s{seed}/selection.parquet",
    log:
        "logs/train_sft/{model}/{richness}/{ablation}/c{coverage}_s{seed}.log",
    benchmark:
        "benchmarks/train_sft/{model}/{richness}/{ablation}/c{coverage}_s{seed}.tsv"
    conda:
        MODEL_ENV
    threads: 1
    resources:
        **rule_resources("train_sft"),
    params:
        code=code("train_sft"),
        model=lambda wc: model_slice(wc.model, "training"),
        hp=lambda wc: hyperparameters("sft", wc.coverage),
        lora=canon(config["lora"]),
        training=canon(config["training"]),
        prompts=canon(config["prompts"]),
    script:
        "../scripts/train_sft.py"


rule train_rollouts:
    input:
        model=model_input,
        gate=gate_input,
        subset=lambda wc: subset_file(wc.coverage, wc.seed),
    output:
        adapter=directory(
            "results/{model}/train/{rollout_method}/{richness}/{ablation}/c{coverage}_s{seed}/adapter"
        ),
        checkpoints=directory(
            "results/{model}/train/{rollout_method}/{richness}/{ablation}/c{coverage}_s{seed}/checkpoints"
        ),
        log_table="results/{model}/train/{rollout_method}/{richness}/{ablation}/c{coverage}_s{seed}/log.parquet",
    log:
        "logs/train_rollouts/{model}/{rollout_method}/{richness}/{ablation}/c{coverage}_s{seed}.log",
    benchmark:
        "benchmarks/train_rollouts/{model}/{rollout_method}/{richness}/{ablation}/c{coverage}_s{seed}.tsv"
    conda:
        MODEL_ENV
    threads: 1
    resources:
        **rule_resources("train_rollouts"),
    params:
        code=lambda wc: code("train_rollouts", wc),
        model=lambda wc: model_slice(wc.model, "training"),
        hp=lambda wc: hyperparameters(wc.rollout_method, wc.coverage),
        rollouts=lambda wc: canon(rollout_engine(wc.model)),
        lora=canon(config["lora"]),
        training=canon(config["training"]),
        prompts=canon(config["prompts"]),
        grading=canon(config["grading"]),
    script:
        "../scripts/train_rollouts.py"
