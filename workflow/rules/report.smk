# The summary page results/README.md (links every table and figure) and the run settings
# results/settings.yaml. `snakemake --report results/report.html all` (after the main job) gathers every
# output marked report(...): tables, figures, settings, each with its caption (workflow/report/).
# The marker of the setting is a job's output, so a dry run writes nothing.


rule setting_mark:
    output:
        SETTING_MARK,
    params:
        setting=PLAN.setting,
    log:
        f"logs/{PLAN.setting}/setting_mark.log",
    conda:
        "../envs/pln.yaml"
    shell:
        "echo {params.setting:q} > {output:q}.tmp && mv {output:q}.tmp {output:q} && echo wrote {output:q} > {log:q}"


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


rule settings:
    input:
        SETTING_MARK,
    output:
        report(SETTINGS, caption="../report/settings.rst", category="Run settings"),
    params:
        spec=settings_spec(PLAN),
    log:
        f"logs/{PLAN.setting}/settings.log",
    run:
        write_settings(params.spec, output[0], log[0])
