"""Snakemake script: draw one paper figure (PNG, PDF; Fig. 8 also its numbers as CSV)."""

import logging

from pln.report.figures import make_figure

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
make_figure(snakemake.params.spec, list(snakemake.output))
logging.info("wrote %s", ", ".join(snakemake.output))
