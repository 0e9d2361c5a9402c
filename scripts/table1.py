from pathlib import Path

import pandas as pd

from selfdistill.io import atomic_path, read_table, write_table
from selfdistill.jobs import config_slice, param, section, start_job
from selfdistill.settings.table1 import Table1Config
from selfdistill.table1 import render, selected_ids, table_rows

start_job(snakemake)
sources, spec = param(snakemake, "sources"), section(snakemake, "table1", Table1Config)
paths = [Path(p) for p in snakemake.input.traces]
by_model = {}
for path in paths:  # results/{model}/table1/{richness}.parquet
    by_model.setdefault(path.parts[-3], {})[path.stem] = read_table(path)
for tables in by_model.values():  # the unguided row: the candidates' samples on the selected problems
    keep = selected_ids(tables["none"], spec.correct_range, spec.n_problems)
    tables["none"] = tables["none"][tables["none"]["problem_id"].isin(keep)]
rows = pd.concat([table_rows(tables).assign(model=model) for model, tables in by_model.items()], ignore_index=True)
write_table(rows, snakemake.output.table, config_slice(snakemake))
sections = [render(rows[rows["model"] == m], m, sources[m]) for m in by_model]
with atomic_path(snakemake.output.markdown) as tmp:
    Path(tmp).write_text("# Table 1: the teacher's responses under each context\n\n" + "\n\n".join(sections) + "\n")
