"""Snakemake script: write the summary page that links every table and figure."""

import logging

from pln.report.summary import write_summary

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
write_summary(snakemake.params.spec, snakemake.output[0])
logging.info("wrote %s", snakemake.output[0])
