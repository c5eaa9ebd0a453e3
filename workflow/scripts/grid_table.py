"""Runs a grid table's own script (experiments.<name>.script, default accuracy_table.py) in this
job, with this job's ``snakemake`` object, and its output sent to the rule's log.

Why a wrapper rather than ``script: "{params.script}"``: the rule's script path stays a real
file, which Snakemake needs to ship the workflow's sources to executors without a shared file
system; the table's script is an input of the rule instead, so editing it reruns the table."""

import os
import runpy
import sys

from tablelib import log_to

log_to(snakemake)  # noqa: F821
script = os.path.abspath(snakemake.input.script)  # noqa: F821
sys.path.insert(0, os.path.dirname(script))  # the script's own helpers (tablelib for workflow/scripts)
runpy.run_path(script, init_globals={"snakemake": snakemake}, run_name="__main__")  # noqa: F821
