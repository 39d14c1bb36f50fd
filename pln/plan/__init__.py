"""The experiment plan of the Snakemake workflow: the workflow config turned into runs, run
configs, resources and the files every job reads and writes.

The Snakemake config (``config.yaml``, optionally overlaid by ``config/smoke.yaml`` or
``config/paper.yaml``) declares

- ``base``: :class:`pln.config.ExperimentConfig` keys shared by every run;
- ``datasets``: one entry per dataset setting (its ``config`` fragment, the paper's name);
- ``models``: one entry per trained model (or prior-only baseline): a dataset, a config
  fragment, optional seeds and resources;
- ``tables`` and ``figures``: the rows of the paper's tables, each naming the model it reads.

A run's experiment config is ``base`` <- dataset ``config`` <- model ``config`` <- the run's own
keys (name, seed, threads, data and cache folders), merged key by key and validated with
:func:`pln.config.config_from_dict`. A model is trained once per seed and serves every table
that names it.

Paths (all relative to the working directory, ``S`` = the setting's name)::

    {runs_root}/S/configs/{model}-seed{seed}.yaml    experiment config of a trained run
    {runs_root}/S/{model}/seed{seed}/                run folder of ``pln train``
    {runs_root}/S/{model}/prior/                     run folder of ``pln baseline-prior``
    {runs_root}/S/stats/{dataset}/                   ``pln stats`` output (Table 1, Fig. 5)

The files inside a run folder are named by :class:`pln.engine.run_dir.RunDir`.

Modules:

- :mod:`pln.plan.loading`: ``config.yaml`` and its overlays, merged and checked as Snakemake
  merges them (``load_snakemake_config``).
- :mod:`pln.plan.plan`: ``Plan`` (runs, seeds, resources, run configs, paths, the resolved
  specification and the input and output files of every table and figure).
- :mod:`pln.plan.run_config`: one run's experiment config from the workflow config, its data
  files and its one-line description.
- :mod:`pln.plan.references`: the checks that every name the config uses is declared.
- :mod:`pln.plan.outputs`: the names of the tables and figures, their formats, the metric names.
- :mod:`pln.plan.jobs`: what the workflow's own jobs call (the ``pln`` command, writing a run
  config, the setting marker).
"""
