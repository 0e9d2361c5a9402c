import pandas as pd

from selfdistill.checking import checking_eval_sets, checking_table, verbalizes_checking
from selfdistill.draws import ARM, checked_samples, draw_table, primary_tests
from selfdistill.findings import evaluate_claims, mechanism_points
from selfdistill.grid import parse_path
from selfdistill.io import read_provenance, read_table, write_table
from selfdistill.jobs import config_slice, param, section, start_job
from selfdistill.organism import organism_effects, sum_lengths
from selfdistill.settings.organism import OrganismConfig
from selfdistill.stats import cell_estimates, mechanism_fit, per_problem, standard_comparisons
from selfdistill.summary import train_size

start_job(snakemake)
rich, eval_set = param(snakemake, "rich"), param(snakemake, "eval_set")
full = train_size(read_table(snakemake.input.train_problems))


def long_table(paths, kind, transform=per_problem):
    return pd.concat([transform(read_table(p)).assign(**parse_path(kind, p, full)) for p in paths], ignore_index=True)


problems = long_table(snakemake.input.evals, "eval").drop(columns="step")
teacher = long_table(snakemake.input.teacher, "teacher")
logs = long_table(snakemake.input.logs, "train", transform=lambda t: t) if snakemake.input.logs else pd.DataFrame()
curves = read_table(snakemake.input.curves)

provenance = {
    **config_slice(snakemake),
    "inputs": {p: read_provenance(p)["config_hash"] for p in snakemake.input.evals},
}
write_table(cell_estimates(problems), snakemake.output.cells, provenance)
write_table(standard_comparisons(problems), snakemake.output.comparisons, provenance)
points = mechanism_points(curves, eval_set) if len(curves) else pd.DataFrame()
mechanism = (
    pd.concat([mechanism_fit(g).assign(model=m) for m, g in points.groupby("model")], ignore_index=True)
    if len(points)
    else pd.DataFrame()
)
write_table(mechanism, snakemake.output.mechanism, provenance)
claims = (
    pd.concat(
        [evaluate_claims(problems, teacher, logs, model, rich, eval_set) for model in problems["model"].unique()],
        ignore_index=True,
    )
    if rich
    else pd.DataFrame()
)
write_table(claims, snakemake.output.claims, provenance)
organism = pd.DataFrame()
if param(snakemake, "organism"):
    sets = section(snakemake, "organism", OrganismConfig)
    strata = sum_lengths(read_table(snakemake.input.train_problems))
    pairs = [tuple(pair) for pair in param(snakemake, "world_pairs")]
    organism = organism_effects(problems, param(snakemake, "worlds"), sets, pairs, strata)
# Per-sample flags, each evaluation read once (three columns): checking's rate and worth on every set
# also sampled with checking forced and banned; and, per pretrained draw (models of one world differing
# only in the pretraining seed or split), the free OOD samples of its base and its solution arm.
pretrained = param(snakemake, "draws") if len(organism) else {}
axes_of = {path: parse_path("eval", path, full) for path in snakemake.input.evals}
reads = checking_eval_sets({a["eval_set"] for a in axes_of.values()})
flags, draw_samples = [], []
for path, axes in axes_of.items():
    arm = axes["method"] == "base" or all(axes[k] == v for k, v in ARM.items())
    in_draws = axes["model"] in pretrained and axes["eval_set"] == sets.ood and arm
    if axes["eval_set"] in reads or in_draws:
        table = read_table(path, ["problem_id", "response", "correct"])
        if axes["eval_set"] in reads:
            flags.append(checked_samples(table, verbalizes_checking).assign(**axes))
        if in_draws:
            draw_samples.append(checked_samples(table).assign(**axes))
checking = checking_table(pd.concat(flags, ignore_index=True)) if flags else pd.DataFrame()
draws = (
    draw_table(organism, pretrained, pd.concat(draw_samples, ignore_index=True), strata, pairs)
    if draw_samples
    else pd.DataFrame()
)
write_table(checking, snakemake.output.checking, provenance)
write_table(organism, snakemake.output.organism, provenance)
write_table(draws, snakemake.output.draws, provenance)
write_table(primary_tests(draws), snakemake.output.draw_tests, provenance)
