"""Reporting: the experiment plan of the Snakemake workflow, the paper's values, the tables and
the figures.

- :mod:`pln.report.experiments`: the Snakemake config -> runs, per-run experiment configs,
  file paths and the resolved specification of every table and figure.
- :mod:`pln.report.paper`: the paper's numbers, transcribed in ``results/paper/*.csv``.
- :mod:`pln.report.tables`: aggregation over seeds (pandas) and CSV / Markdown / LaTeX output.
- :mod:`pln.report.figures`: Fig. 5, Fig. 7 and Fig. 8 (seaborn / matplotlib).
"""
