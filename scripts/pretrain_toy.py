import shutil
from pathlib import Path

import pandas as pd

from selfdistill.io import apply_umask, read_table, write_table
from selfdistill.jobs import param, start_job
from selfdistill.toy_model import pretrain

start_job(snakemake)
spec, templates = param(snakemake, "spec"), param(snakemake, "prompts")
problems = read_table(snakemake.input.problems)
held_out = set(problems.loc[problems["split"] != "train", "problem"])
model, tokenizer, rows = pretrain(spec, templates, held_out, seed=spec["seed"])

out = Path(snakemake.output.model)
tmp = out.with_name(out.name + ".tmp")
shutil.rmtree(tmp, ignore_errors=True)
model.save_pretrained(tmp)
tokenizer.save_pretrained(tmp)
apply_umask(tmp)
tmp.rename(out)  # the directory appears only when complete
write_table(pd.DataFrame(rows), snakemake.output.log_table, {"toy_pretrain": spec, "prompts": templates}, seed=spec["seed"])
