# The claims report results/claims.{csv,md} (every claim of the paper, a verdict) and the
# resolving-power page (seeds, test queries, selected epoch, seed s.d. per model; MDE per claim).

if PLAN.claims_outputs():

    rule claims:
        input:
            [*claims_inputs(CLAIMS_SPEC), SETTING_MARK],
        output:
            csv=PLAN.claims_outputs()["csv"],
            md=report(PLAN.claims_outputs()["md"], caption="../report/claims.rst", category="Claims"),
            parts=PLAN.claims_outputs()["parts"],
        params:
            spec=CLAIMS_SPEC,
        log:
            f"logs/{PLAN.setting}/claims.log",
        conda:
            "../envs/pln.yaml"
        script:
            "../scripts/make_claims.py"

    rule resolving_power:
        input:
            claims=PLAN.claims_outputs()["csv"],
            setting=SETTING_MARK,
        output:
            PLAN.resolving_power_output(),
        params:
            spec=CLAIMS_SPEC,
        log:
            f"logs/{PLAN.setting}/resolving_power.log",
        conda:
            "../envs/pln.yaml"
        script:
            "../scripts/make_resolving_power.py"
