import shutil
from pathlib import Path

import pandas as pd

from selfdistill.io import apply_umask, read_table, write_table
from selfdistill.jobs import config_slice, section, start_job
from selfdistill.settings.prompts import Prompts
from selfdistill.settings.toy import ToyPretrainConfig
from selfdistill.toy_model import pretrain

start_job(snakemake)
spec = section(snakemake, "spec", ToyPretrainConfig)
problems = read_table(snakemake.input.problems)
held_out = set(problems.loc[problems["split"] != "train", "problem"])
model, tokenizer, rows = pretrain(spec, section(snakemake, "prompts", Prompts), held_out, seed=spec.seed)

out = Path(snakemake.output.model)
tmp = out.with_name(out.name + ".tmp")
shutil.rmtree(tmp, ignore_errors=True)
model.save_pretrained(tmp)
tokenizer.save_pretrained(tmp)
apply_umask(tmp)
tmp.rename(out)  # the directory appears only when complete
write_table(pd.DataFrame(rows), snakemake.output.log_table, config_slice(snakemake), seed=spec.seed)
