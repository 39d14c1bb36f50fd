# The summary page results/README.md: links every table and figure; the marker of the setting.


rule setting_mark:
    output:
        SETTING_MARK,
    params:
        setting=PLAN.setting,
    log:
        f"logs/{PLAN.setting}/setting_mark.log",
    run:
        write_setting_mark(output[0], params.setting, log[0])


rule summary:
    input:
        tables=PLAN.all_tables(),
        figures=PLAN.all_figures(),
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
