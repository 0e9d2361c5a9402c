from pathlib import Path

from selfdistill.io import atomic_path, write_table
from selfdistill.jobs import config_slice, param, start_job
from selfdistill.organism import predictions, render_predictions

start_job(snakemake)
table = predictions(param(snakemake, "worlds"), [tuple(arm) for arm in param(snakemake, "arms")])
write_table(table, snakemake.output.table, config_slice(snakemake))
with atomic_path(snakemake.output.text) as tmp:
    Path(tmp).write_text(render_predictions(table) if len(table) else "No toy model of a guess world in this grid.\n")
