"""results/table1.csv and table8.csv: the qualitative tables written by seqmatch.evaluate
(mistakes / text-mistakes), with the columns that say what produced them appended."""

import pandas as pd

from tablelib import log_to, provenance_columns, write_csv

log_to(snakemake)  # noqa: F821
df = pd.read_csv(snakemake.input.csv, keep_default_na=False)  # noqa: F821
for key, value in provenance_columns(snakemake.params.provenance, snakemake.input.meta).items():  # noqa: F821
    df[key] = value
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df.to_string())
