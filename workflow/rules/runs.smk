# Runs: one experiment config per run, dataset preparation and statistics, training, prior-only
# baselines. A model is trained once per seed and serves every table that names it.


rule run_config:
    output:
        f"{RUNS}/configs/{{name}}.yaml",
    params:
        # A function of the wildcards alone: Snakemake records such params (not those that read
        # `output`), so a changed config rewrites the file and reruns whatever reads it.
        text=lambda wildcards: run_config_text(PLAN.run_configs[wildcards.name], PLAN.config_path(wildcards.name)),
    log:
        f"logs/{PLAN.setting}/configs/{{name}}.log",
    conda:
        "../envs/pln.yaml"
    shell:
        "printf '%s' {params.text:q} > {output:q}.tmp && mv {output:q}.tmp {output:q} && echo wrote {output:q} > {log:q}"


rule stats:
    input:
        unpack(stats_inputs),
    output:
        *[f"{RUNS}/stats/{{dataset}}/{name}" for name in STATS_FILES],
    params:
        pln=PLN,
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        f"logs/{PLAN.setting}/stats/{{dataset}}.log",
    conda:
        "../envs/pln.yaml"
    shell:
        "{params.pln} stats {input.config:q} --out {params.out_dir:q} > {log:q} 2>&1"


# --replace-stale: a run folder of another config is emptied and trained afresh; --extend first: a
# config that differs only in a longer train.max_epochs or train.stop_patience continues the run
# from its last epoch (the same epochs as a fresh run of the longer budget).
rule train:
    input:
        unpack(train_inputs),
    output:
        *[f"{RUNS}/{{model}}/seed{{seed}}/{name}" for name in RunDir.TRAIN_RESULTS],
    params:
        pln=PLN,
        run_dir=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        f"logs/{PLAN.setting}/train/{{model}}/seed{{seed}}.log",
    benchmark:
        f"logs/{PLAN.setting}/train/{{model}}/seed{{seed}}.benchmark.tsv"
    threads: lambda wildcards: PLAN.resources(wildcards.model)["threads"]
    resources:
        gpu=train_resource("gpu"),
        mem_mb=train_resource("mem_mb"),
        runtime=train_resource("runtime"),
        cpus_per_task=train_resource("threads"),
    conda:
        "../envs/pln.yaml"
    shell:
        "{params.pln} train {input.config:q} --out {params.run_dir:q} --replace-stale --extend > {log:q} 2>&1"


rule prior:
    input:
        unpack(prior_inputs),
    output:
        *[f"{RUNS}/{{model}}/prior/{name}" for name in RunDir.PRIOR_RESULTS],
    params:
        pln=PLN,
        run_dir=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        f"logs/{PLAN.setting}/prior/{{model}}.log",
    conda:
        "../envs/pln.yaml"
    shell:
        "{params.pln} baseline-prior {input.config:q} --out {params.run_dir:q} --replace-stale > {log:q} 2>&1"
