# PLN-Bench: every table and figure of the paper, regenerated.
#
#   snakemake --cores all all                 claims report, tables, figures and results/README.md
#   snakemake --cores all all_tables          results/tables/table{1..7}.{csv,md,tex}
#   snakemake --cores all all_figures         figures/fig{5,7,8}.{png,pdf}
#   snakemake --cores all figures/fig7.png    one output: only the jobs it needs
#   snakemake --cores all training_inputs     run configs and datasets, for training elsewhere
#   snakemake ... --configfile config/smoke.yaml   (or config/paper.yaml): an overlay on config.yaml
#   snakemake --report results/report.html all   after `all`: every table, figure and the run settings
#
# The plan (runs, run configs, table rows) lives in pln.plan; the rules below only wire files
# together.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/claims.smk"
