# Self-distillation vs. epistemic verbalization: the whole experiment as one DAG.
# Run: snakemake --cores N   (config/config.yaml, the toy world, by default)
# Every --configfile is an overlay: merged into this embedded default, in order (docs/configuration.md).
from pathlib import Path

from selfdistill.config import load_yaml

DEFAULT_CONFIG = Path(workflow.basedir) / "config/config.yaml"
# Read once by our loader first, which names the line YAML cannot read (Snakemake's does not).
load_yaml(DEFAULT_CONFIG)


configfile: DEFAULT_CONFIG


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
