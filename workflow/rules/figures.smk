# Figures: seaborn / matplotlib, PNG and PDF under figures/ (Fig. 8 also its numbers as CSV).


rule figure:
    input:
        lambda wildcards: [*PLAN.figure_inputs(wildcards.figure), SETTING_MARK],
    output:
        png=report(f"{PLAN.figures_dir}/{{figure}}.png", caption="../report/figure.rst", category="Figures",
                   subcategory="{figure}"),
        pdf=f"{PLAN.figures_dir}/{{figure}}.pdf",
    wildcard_constraints:
        figure="fig[57]",
    params:
        spec=lambda wildcards: PLAN.figure_spec(wildcards.figure),
    log:
        f"logs/{PLAN.setting}/figures/{{figure}}.log",
    conda:
        "../envs/pln.yaml"
    script:
        "../scripts/make_figure.py"


rule fig8:
    input:
        [*PLAN.figure_inputs("fig8"), SETTING_MARK] if "fig8" in PLAN.figures else [SETTING_MARK],
    output:
        png=report(f"{PLAN.figures_dir}/fig8.png", caption="../report/figure.rst", category="Figures",
                   subcategory="fig8"),
        pdf=f"{PLAN.figures_dir}/fig8.pdf",
        csv=f"{PLAN.figures_dir}/fig8.csv",
    params:
        spec=PLAN.figure_spec("fig8") if "fig8" in PLAN.figures else {},
    log:
        f"logs/{PLAN.setting}/figures/fig8.log",
    conda:
        "../envs/pln.yaml"
    script:
        "../scripts/make_figure.py"
