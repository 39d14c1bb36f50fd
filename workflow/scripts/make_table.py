"""Snakemake script: build one paper table (CSV, Markdown, LaTeX) from its spec."""

import logging

from pln.report.tables import make_table

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
frame = make_table(snakemake.params.spec, snakemake.output.csv, snakemake.output.md, snakemake.output.tex)
logging.info("%s: %d lines from %d input files", snakemake.output.csv, len(frame), len(snakemake.input))
