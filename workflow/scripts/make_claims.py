"""Snakemake script: the claims report (CSV per claim, CSV per part, Markdown)."""

import logging

from pln.report.claims import make_claims

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
frame = make_claims(snakemake.params.spec)
logging.info("%s: %d claims from %d input files", snakemake.output.csv, len(frame), len(snakemake.input))
