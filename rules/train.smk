# Offline self-distillation: LoRA SFT of the bare-question student on teacher traces.


rule train_sft:
    input:
        model=model_input,
        subset=lambda wc: subset_file(wc.coverage, wc.seed),
        traces="results/{model}/teacher/{richness}/c{coverage}_s{seed}.parquet",
        code=MODEL_CODE + pkg("train/sft.py", "train/batching.py"),
    output:
        adapter=directory("results/{model}/train/sft/{richness}/{ablation}/c{coverage}_s{seed}/adapter"),
        log_table="results/{model}/train/sft/{richness}/{ablation}/c{coverage}_s{seed}/log.parquet",
    params:
        model_path=lambda wc: model_dir(wc.model),
        model=lambda wc: model_slice(wc.model),
        sft=canon(config["sft"]),
        prompts=lambda wc: canon(config["prompts"]),
    log:
        "logs/train_sft/{model}/{richness}/{ablation}/c{coverage}_s{seed}.log",
    benchmark:
        "benchmarks/train_sft/{model}/{richness}/{ablation}/c{coverage}_s{seed}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1,
    script:
        "../scripts/train_sft.py"
