# Targets: everything, every table, every figure, what training needs. Single outputs can be asked
# for by path.


rule all:
    input:
        PLAN.all_reports(),
        PLAN.all_tables(),
        PLAN.all_figures(),
        PLAN.summary,
        SETTINGS,


rule all_tables:
    input:
        PLAN.all_tables(),


rule all_figures:
    input:
        PLAN.all_figures(),


# Every trained run's config and its dataset's statistics: run before handing the training to a
# machine without Snakemake (benchmarks/gpu_train_setting.sh), so that the run folders it returns
# are newer than their inputs.
rule training_inputs:
    input:
        PLAN.training_inputs(),
