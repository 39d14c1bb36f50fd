# The summary page results/README.md: links every table and figure.


rule summary:
    input:
        tables=PLAN.all_tables(),
        figures=PLAN.all_figures(),
        reports=PLAN.all_reports(),
        setting=SETTING_MARK,
    output:
        PLAN.summary,
    params:
        spec=PLAN.summary_spec(),
    log:
        f"logs/{PLAN.setting}/summary.log",
    conda:
        "../envs/pln.yaml"
    script:
        "../scripts/make_summary.py"
