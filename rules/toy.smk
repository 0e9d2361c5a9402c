# The toy world's model organism: tokenizer + ~1M-parameter Qwen2, pretrained on CPU.


rule pretrain_toy:
    input:
        # Held-out problems are excluded from pretraining, so "test" and "ood" stay unseen.
        problems=dataset_file(config["train_dataset"]),
    output:
        model=directory("results/models/{model}/hf"),
        log_table="results/models/{model}/pretrain_log.parquet",
    log:
        "logs/pretrain_toy/{model}.log",
    # Shared between workflows with `--cache` (the result depends only on inputs, code and params).
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    # One thread: a ~1M-parameter model gains little from a second (0.48 vs 0.63 s per step on 2
    # cores), so two pretrainings side by side (0.63-0.65 s per step each) beat one after the other
    # (bench/suite.py --only pretraining).
    threads: 1
    resources:
        **rule_resources("pretrain_toy"),
    params:
        code=code("pretrain_toy"),
        # A function: only toy-world configs have toy_pretrain.
        spec=lambda wc: canon(toy_pretrain_spec(config, wc.model)),
        prompts=canon(config["prompts"]),
    script:
        "../scripts/pretrain_toy.py"


# The guess worlds' gate: before any distillation, the base model must show what its world claims
# (checking worth accuracy OOD and not in domain, Wait after wrong guesses; nothing in the null world).
rule gate:
    input:
        unpack(gate_inputs),
    output:
        "results/{model}/gate.json",
    log:
        "logs/gate/{model}.log",
    conda:
        "../envs/cpu.yaml"
    threads: 1
    resources:
        **rule_resources("gate"),
    params:
        code=code("gate"),
        organism=canon(config.get("organism")),
        world=lambda wc: canon(toy_world(config, wc.model)),
        # Recorded beside the gate's numbers: the pretraining seed and the dose of checking.
        pretraining=lambda wc: canon(pretraining_record(wc.model)),
    script:
        "../scripts/gate.py"
