# Tables: pandas aggregation over seeds into results/tables/tableN.{csv,md,tex}.


rule table:
    input:
        lambda wildcards: [*PLAN.table_inputs(wildcards.table), SETTING_MARK],
    output:
        csv=report(f"{PLAN.tables_dir}/{{table}}.csv", caption="../report/table.rst", category="Tables",
                   subcategory="{table}"),
        md=f"{PLAN.tables_dir}/{{table}}.md",
        tex=f"{PLAN.tables_dir}/{{table}}.tex",
    params:
        spec=lambda wildcards: PLAN.table_spec(wildcards.table),
    log:
        f"logs/{PLAN.setting}/tables/{{table}}.log",
    conda:
        "../envs/pln.yaml"
    script:
        "../scripts/make_table.py"
