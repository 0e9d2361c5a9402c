# Self-distillation vs. epistemic verbalization: the whole experiment as one DAG.
# Run: snakemake --cores N   (config/config.yaml, the toy world, by default)
from pathlib import Path

from selfdistill.config import load_yaml

# A --configfile replaces this embedded default rather than being merged into it.
if not workflow.overwrite_configfiles:
    # Read once by our loader first, which names the line YAML cannot read (Snakemake's does not).
    load_yaml(Path(workflow.basedir) / "config/config.yaml")

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/toy.smk"
include: "rules/data.smk"
include: "rules/teacher.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/table1.smk"


rule all:
    input:
        "results/summary/metrics.parquet",
        "results/findings.md",
        FIGURES,
        "results/table1.md" if "table1" in config else [],
