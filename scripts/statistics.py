import pandas as pd

from selfdistill.findings import evaluate_claims, mechanism_points
from selfdistill.io import read_provenance, read_table, write_table
from selfdistill.jobs import start_job
from selfdistill.stats import cell_estimates, mechanism_regression, per_problem, standard_comparisons
from selfdistill.summary import EVAL_PATH, TEACHER_PATH, TRAIN_PATH, parse_path, train_size

start_job(snakemake)
rich, eval_set = snakemake.params.rich, snakemake.params.eval_set
full = train_size(read_table(snakemake.input.train_problems))


def long_table(paths, pattern, transform=per_problem):
    return pd.concat([transform(read_table(p)).assign(**parse_path(pattern, p, full)) for p in paths], ignore_index=True)


problems = long_table(snakemake.input.evals, EVAL_PATH)
teacher = long_table(snakemake.input.teacher, TEACHER_PATH)
logs = long_table(snakemake.input.logs, TRAIN_PATH, transform=lambda t: t) if snakemake.input.logs else pd.DataFrame()
curves = long_table(snakemake.input.curves, TRAIN_PATH, transform=lambda t: t) if snakemake.input.curves else pd.DataFrame()

config_slice = {"inputs": {p: read_provenance(p)["config_hash"] for p in snakemake.input.evals}, "rich": rich, "eval_set": eval_set}
write_table(cell_estimates(problems), snakemake.output.cells, config_slice)
write_table(standard_comparisons(problems), snakemake.output.comparisons, config_slice)
points = mechanism_points(problems, curves, eval_set) if len(curves) else pd.DataFrame()
mechanism = mechanism_regression(points) if len(points) else pd.DataFrame()
write_table(mechanism, snakemake.output.mechanism, config_slice)
claims = pd.concat(
    [evaluate_claims(problems, teacher, logs, model, rich, eval_set) for model in problems["model"].unique()], ignore_index=True
) if rich else pd.DataFrame()
write_table(claims, snakemake.output.claims, config_slice)
