"""Reporting: the results of the runs turned into the paper's tables, figures and claims.

The workflow's plan (which runs exist, where their files are, what each table and figure reads)
is :mod:`pln.plan`; this package only reads the files it names.

- :mod:`pln.report.paper`: the paper's numbers, transcribed in ``results/paper/*.csv``.
- :mod:`pln.report.tables`: aggregation over seeds (pandas) and CSV / Markdown / LaTeX output.
- :mod:`pln.report.figures`: Fig. 5, Fig. 7 and Fig. 8 (seaborn / matplotlib).
- :mod:`pln.report.claims`: the paper's claims tested against the runs, and the resolving power.
- :mod:`pln.report.summary` and :mod:`pln.report.settings`: the results page and the run settings.
- :mod:`pln.report.check`: the outputs of a finished workflow, checked.
"""
