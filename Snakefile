# seqmatch: reproduce every table and figure of SequenceMatch (Cundy & Ermon, ICLR 2024).
#
#   snakemake --cores all                                   # default profile (config.yaml): CPU, offline
#   snakemake --cores all results/table2.csv                # one artifact and only what it needs
#   snakemake --cores all --configfile workflow/configs/smoke.yaml     # the same DAG in minutes
#   snakemake --configfile workflow/configs/paper.yaml --profile workflow/profiles/slurm
#   snakemake --report results/report.html                  # every artifact with its caption
#
# The config is validated against workflow/schemas/config.schema.yaml before any job runs.

from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/tables.smk"


rule all:
    input:
        all_artifacts(),
    default_target: True
