"""Snakemake script: the resolving-power page (per model and per claim)."""

import logging

from pln.report.claims import make_resolving_power

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
make_resolving_power(snakemake.params.spec, snakemake.input.claims, snakemake.output[0])
logging.info("wrote %s", snakemake.output[0])
