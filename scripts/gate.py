import json

from selfdistill.io import atomic_path, read_table
from selfdistill.jobs import config_slice, param, section, start_job
from selfdistill.organism import gate
from selfdistill.settings.organism import OrganismConfig

start_job(snakemake)
config, world = section(snakemake, "organism", OrganismConfig), param(snakemake, "world")
answers = read_table(snakemake.input.problems).set_index("problem_id")["answer"]
evals = {key: read_table(snakemake.input[key]) for key in ("ood_off", "ood_on", "in_domain_off", "in_domain_on")}
result = {**gate(world, evals, answers, config), **param(snakemake, "pretraining")}
if not result["passed"]:
    # No output: nothing downstream (teacher traces, training) starts; the evaluations are kept.
    raise SystemExit(
        f"gate failed for model {snakemake.wildcards.model} (world {world}): "
        + "; ".join(result["failures"])
        + ". The toy world is not what it claims, so distilling it would test nothing: strengthen it "
        "(toy_pretrain.steps, traces.p_check, traces.p_wrong_guess) or change the thresholds in the organism section."
    )
with atomic_path(snakemake.output[0]) as tmp:
    with open(tmp, "w") as f:
        json.dump({**result, "provenance": config_slice(snakemake)}, f, indent=1, sort_keys=True, default=str)
