"""Save a pretrained model's tokenizer with <bkspc> (and <pad> if missing) added, as a local
directory every rule can pass as --tokenizer (paper profile; seqmatch.data.load_tokenizer)."""

import os
import sys

sys.path.insert(0, os.getcwd())  # the repository root: seqmatch importable without installing
sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821

from seqmatch.data import load_tokenizer  # noqa: E402

tok = load_tokenizer(snakemake.params.name)  # noqa: F821
tok.save_pretrained(snakemake.output[0])  # noqa: F821
print(f"saved {snakemake.params.name} + <bkspc> ({len(tok)} tokens) to {snakemake.output[0]}")  # noqa: F821
