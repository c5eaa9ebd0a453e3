"""results/table2.csv: the paper's Table 2. Rows MLE, MLE + C.S., MLE + ULK, MLE + <bkspc>,
SequenceMatch; columns MAUVE, n-gram entropy, diversity (mean and sd over the evaluation draws)
and perplexity on held-out data (NaN for contrastive search, which defines none)."""

import pandas as pd

from tablelib import log_to, num, provenance_columns, read_json, write_csv

log_to(snakemake)  # noqa: F821
prov = provenance_columns(snakemake.params.provenance, snakemake.input.meta)  # noqa: F821
settings = snakemake.params.eval_settings  # noqa: F821

rows = []
for run in snakemake.params.runs:  # noqa: F821
    ev = read_json(run["eval"])
    ppl = ev.get("perplexity_mean", ev.get("perplexity"))
    rows.append({
        "method": run["row"],
        "mauve_mean": num(ev.get("mauve_mean")),
        "mauve_sd": num(ev.get("mauve_sd")),
        "ngram_entropy_mean": num(ev.get("ngram_entropy_mean")),
        "ngram_entropy_sd": num(ev.get("ngram_entropy_sd")),
        "diversity_mean": num(ev.get("diversity_mean")),
        "diversity_sd": num(ev.get("diversity_sd")),
        "perplexity_mean": num(None if run["decoding"] == "contrastive" else ppl),
        "perplexity_sd": num(None if run["decoding"] == "contrastive" else ev.get("perplexity_sd")),
        "bkspc_rate": num(ev.get("bkspc_rate")),
        "decoding": run["decoding"],
        "featurizer": ev.get("featurizer", settings["featurizer"]),
        "n_samples": ev.get("n_samples", settings["n_samples"]),
        "draws": ev.get("draws", settings["draws"]),
        "prompt_tokens": settings["prompt_tokens"],
        "new_tokens": settings["new_tokens"],
        **prov,
    })
df = pd.DataFrame(rows)
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df.to_string())
