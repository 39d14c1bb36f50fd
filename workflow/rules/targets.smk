# Targets: everything, every table, every figure. Single outputs can be asked for by path.


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
