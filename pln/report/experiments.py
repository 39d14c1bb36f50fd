"""The experiment plan: the Snakemake config turned into runs, run configs and table specs.

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
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pln.config import ModelConfig, config_from_dict, merge
from pln.engine.run_dir import RunDir
from pln.errors import ConfigError

STATS_FILES = ("table1.csv", "moment_lengths.csv")
TABLES = ("table1", "table2", "table3", "table4", "table5", "table6", "table7")
FIGURES = ("fig5", "fig7", "fig8")
TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")
_METRIC = re.compile(r"^R(\d+)@([0-9.]+)$|^mIoU$")


def parse_metric(name: str) -> tuple[int, float] | None:
    """``"R5@0.3"`` -> ``(5, 0.3)``; ``"mIoU"`` -> ``None``; anything else raises ConfigError."""
    match = _METRIC.match(name)
    if not match:
        raise ConfigError(f"metric {name!r}: expected R<n>@<m> (e.g. R1@0.5) or mIoU")
    if name == "mIoU":
        return None
    return int(match.group(1)), float(match.group(2))


@dataclass(frozen=True)
class Run:
    """One job output: a trained model at one seed, or a prior-only baseline (``seed`` None)."""

    model: str
    dataset: str
    kind: str  # "train" | "prior"
    seed: int | None


class Plan:
    """The resolved experiment plan of one Snakemake config (one setting)."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.setting: str = config["setting"]
        self.setting_file: str = config.get("setting_file", "config.yaml")
        self.description: str = config.get("description", "")
        self.runs_root = f"{config.get('runs_root', 'runs')}/{self.setting}"
        self.tables_dir: str = config.get("tables_dir", "results/tables")
        self.figures_dir: str = config.get("figures_dir", "figures")
        self.paper_dir: str = config.get("paper_dir", "results/paper")
        self.summary: str = config.get("summary", "results/README.md")
        self.datasets: dict[str, dict[str, Any]] = config["datasets"]
        self.models: dict[str, dict[str, Any]] = config["models"]
        self.tables: dict[str, dict[str, Any]] = config.get("tables", {})
        self.figures: dict[str, dict[str, Any]] = config.get("figures", {})
        self.claims: dict[str, Any] = config.get("claims", {})
        self._check_references()
        self.run_configs: dict[str, dict[str, Any]] = self._resolve_run_configs()

    # ------------------------------------------------------------------------------------------
    # Models, seeds and runs

    def kind(self, model: str) -> str:
        return self.models[model].get("kind", "train")

    def seeds(self, model: str) -> list[int]:
        """Seeds a model is trained with; prior: ``[None]``.

        A model's ``seeds`` is a list, or the name of a list under ``seed_sets``; without it the
        global ``seeds``.
        """
        if self.kind(model) == "prior":
            return [None]
        seeds = self.models[model].get("seeds", self.config["seeds"])
        if isinstance(seeds, str):
            sets = self.config.get("seed_sets", {})
            if seeds not in sets:
                raise ConfigError(f"{self.setting_file}: models.{model}.seeds: unknown seed set {seeds!r}; "
                                  f"declare it under seed_sets (known: {', '.join(sets) or 'none'})")
            seeds = sets[seeds]
        return list(seeds)

    def runs(self, model: str) -> list[Run]:
        entry = self.models[model]
        return [Run(model, entry["dataset"], self.kind(model), s) for s in self.seeds(model)]

    def all_runs(self) -> list[Run]:
        return [run for model in self.models for run in self.runs(model)]

    def used_models(self) -> list[str]:
        """The models whose runs this setting's tables and figures read (a model declared in
        ``config.yaml`` but used by no output of the setting, like the JSONL example, is left out)."""
        inputs = {f for t in self.tables for f in self.table_inputs(t)}
        inputs |= {f for fig in self.figures for f in self.figure_inputs(fig)}
        return [m for m in self.models
                if any(f.startswith(self.run_dir(r) + "/") for r in self.runs(m) for f in inputs)]

    def run_dir(self, run: Run) -> str:
        leaf = "prior" if run.kind == "prior" else f"seed{run.seed}"
        return f"{self.runs_root}/{run.model}/{leaf}"

    def run_file(self, run: Run, name: str) -> str:
        return f"{self.run_dir(run)}/{name}"

    def config_name(self, run: Run) -> str:
        return f"{run.model}-prior" if run.kind == "prior" else f"{run.model}-seed{run.seed}"

    def config_path(self, name: str) -> str:
        return f"{self.runs_root}/configs/{name}.yaml"

    def stats_dir(self, dataset: str) -> str:
        return f"{self.runs_root}/stats/{dataset}"

    def resources(self, model: str) -> dict[str, Any]:
        """Training resources: the global ``resources.train`` updated by the model's own."""
        res = dict(self.config.get("resources", {}).get("train", {}))
        res.update(self.models[model].get("resources", {}))
        return {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1} | res

    # ------------------------------------------------------------------------------------------
    # Experiment configs

    def _merged(self, dataset: str, fragment: dict[str, Any], name: str, seed: int | None,
                threads: int) -> dict[str, Any]:
        values = merge(copy.deepcopy(self.config.get("base", {})), self.datasets[dataset].get("config", {}))
        values = merge(values, fragment)
        data = values.setdefault("data", {})
        data.setdefault("data_dir", f"{self.config.get('data_root', 'data')}/{self.setting}/{dataset}")
        data.setdefault("cache_dir", f"{self.config.get('cache_root', 'cache')}/{self.setting}/{dataset}")
        divisor = int(self.config.get("clip_divisor", 1))
        if divisor > 1:
            # A CPU-sized setting: every clip count and the unit count divided by the same factor.
            model = values.setdefault("model", {})
            defaults = ModelConfig()
            model["clips"] = [c // divisor for c in model.get("clips", defaults.clips)]
            model["num_units"] = model.get("num_units", defaults.num_units) // divisor
        train = values.setdefault("train", {})
        train.setdefault("threads", threads)
        if seed is not None:
            train["seed"] = seed
        values["name"] = name
        return values

    def _resolve_run_configs(self) -> dict[str, dict[str, Any]]:
        """Every experiment config the workflow writes, by config name, validated."""
        out: dict[str, dict[str, Any]] = {}
        for dataset in self.datasets:
            out[f"stats-{dataset}"] = self._merged(dataset, {}, f"stats-{dataset}", None, 1)
        for run in self.all_runs():
            fragment = self.models[run.model].get("config", {})
            threads = int(self.resources(run.model)["threads"])
            out[self.config_name(run)] = self._merged(run.dataset, fragment, run.model, run.seed, threads)
        for name, values in out.items():
            config_from_dict(values, f"{self.setting_file}: experiment config {name!r}")
        return out

    def dataset_used(self, dataset: str) -> str:
        """The dataset actually run, e.g. ``synthetic-charades (I3D stand-in: ...)``."""
        used = self.run_configs[f"stats-{dataset}"]["data"]["dataset"]
        note = self.datasets[dataset].get("note")
        return f"{used} ({note})" if note else used

    def model_note(self, model: str) -> str:
        """The model's size, training budget and recipe in one line, from its resolved config."""
        cfg = config_from_dict(self.run_configs[self.config_name(self.runs(model)[0])])
        if self.kind(model) == "prior":
            return f"{model}: prior-only baseline (most common training moment, no learning)"
        m, t = cfg.model, cfg.train
        parts = [
            f"clips {'-'.join(map(str, m.clips))}",
            f"hidden {m.hidden}",
            f"ConvNet {m.conv_layers}x {m.conv_kernel}x{m.conv_kernel} conv, {m.conv_channels} ch",
            f"{m.lstm_layers}-layer LSTM",
        ]
        if m.num_stages > 1:
            parts.append(f"CFM {'on' if m.use_cfm else 'off'}, UC {'on' if m.use_uc else 'off'}")
        label = cfg.loss.label if cfg.loss.label == "pln" else f"tan {cfg.loss.min_iou:g}/{cfg.loss.max_iou:g}"
        parts += [f"labels {label}", f"{t.max_epochs} epochs max"]
        if t.max_train_batches is not None:
            parts.append(f"{t.max_train_batches} batches/epoch")
        parts.append(f"Adam lr {t.lr:g}, batch {t.batch_size}")
        parts.append(f"grad clip {t.grad_clip_norm:g}" if t.grad_clip_norm is not None else "no grad clip")
        if t.lr_plateau is not None:
            parts.append(f"lr plateau on val loss (x{t.lr_plateau.factor:g}, patience {t.lr_plateau.patience})")
        parts.append("bf16" if t.bf16 else "fp32")
        parts.append(f"seeds {', '.join(map(str, self.seeds(model)))}")
        return f"{model}: " + ", ".join(parts)

    # ------------------------------------------------------------------------------------------
    # Tables and figures

    def run_files(self, model: str) -> list[dict[str, Any]]:
        """Per run of ``model``: ``{"seed", "metrics", "predictions"}`` (the paths of its
        ``test_metrics.json`` and ``predictions.csv``)."""
        return [{"seed": run.seed, "metrics": self.run_file(run, RunDir.TEST_METRICS),
                 "predictions": self.run_file(run, RunDir.PREDICTIONS)} for run in self.runs(model)]

    def meta(self) -> dict[str, Any]:
        return {"setting": self.setting, "setting_file": self.setting_file, "description": self.description}

    def table_spec(self, table: str) -> dict[str, Any]:
        """Everything the table builder needs, as plain data (the rule's params)."""
        cfg = self.tables[table]
        spec: dict[str, Any] = {"table": table, "title": cfg.get("title", table), **self.meta(),
                                "paper_csv": f"{self.paper_dir}/{table}.csv"}
        if table == "table1":
            spec["metrics"] = list(cfg.get("metrics", ["videos", "sentences"]))
            spec["splits"] = list(cfg.get("splits", ["train", "val", "test"]))
            spec["blocks"] = [{"dataset": self.datasets[d].get("paper", d), "dataset_used": self.dataset_used(d),
                               "stats": f"{self.stats_dir(d)}/table1.csv"} for d in cfg["datasets"]]
            return spec
        report = self.config.get("report", {})
        spec["n_boot"] = int(report.get("n_boot", 2000))
        spec["bootstrap_seed"] = int(report.get("bootstrap_seed", 0))
        spec["min_seeds_for_test"] = int(report.get("min_seeds_for_test", 3))
        blocks = []
        for block in cfg["blocks"]:
            dataset = block["dataset"]
            rows, models = [], []
            for row in block["rows"]:
                against = row.get("test_against")
                item = {"label": row["label"], "model": row["model"], "metrics_from": row.get("metrics_from", "default"),
                        "paper": row.get("paper"), "runs": self.run_files(row["model"])}
                models.append(row["model"])
                if against is not None:
                    label = next((r["label"] for r in block["rows"] if r["model"] == against), against)
                    item["test_against"] = {"label": label, "model": against, "runs": self.run_files(against)}
                    models.append(against)
                rows.append(item)
            blocks.append({
                "title": block.get("title", self.datasets[dataset].get("paper", dataset)),
                "dataset": self.datasets[dataset].get("paper", dataset),
                "dataset_used": self.dataset_used(dataset),
                "paper_block": block.get("paper_block", self.datasets[dataset].get("paper", dataset)),
                "metrics": list(block["metrics"]),
                "rows": rows,
                "notes": [self.model_note(m) for m in dict.fromkeys(models)],
            })
        spec["blocks"] = blocks
        return spec

    def table_inputs(self, table: str) -> list[str]:
        spec = self.table_spec(table)
        files = [spec["paper_csv"]]
        for block in spec["blocks"]:
            if "stats" in block:
                files.append(block["stats"])
            for row in block.get("rows", []):
                for run in row["runs"] + row.get("test_against", {}).get("runs", []):
                    files += [run["metrics"], run["predictions"]]
        return list(dict.fromkeys(files))

    def figure_spec(self, figure: str) -> dict[str, Any]:
        cfg = self.figures[figure]
        spec: dict[str, Any] = {"figure": figure, **self.meta()}
        if figure == "fig5":
            spec["datasets"] = [{"dataset": self.datasets[d].get("paper", d), "dataset_used": self.dataset_used(d),
                                 "lengths": f"{self.stats_dir(d)}/moment_lengths.csv"} for d in cfg["datasets"]]
        elif figure == "fig7":
            model = cfg["model"]
            seed = cfg.get("seed")
            run = next((r for r in self.runs(model) if seed is None or r.seed == seed), None)
            if run is None:
                raise ConfigError(f"figures.fig7.seed: model {model!r} is not trained with seed {seed}")
            dataset = self.models[model]["dataset"]
            spec.update({"model": model, "seed": run.seed, "query": int(cfg.get("query", 0)),
                         "dataset": self.datasets[dataset].get("paper", dataset),
                         "dataset_used": self.dataset_used(dataset),
                         "score_maps": self.run_file(run, RunDir.SCORE_MAPS)})
        elif figure == "fig8":
            spec["metrics"] = list(cfg.get("metrics", ["R1@0.5", "mIoU"]))
            spec["edges"] = [float(e) for e in cfg.get("edges", [0.0, 0.1, 0.2, 0.3, 0.5, 1.0])]
            spec["min_count"] = int(cfg.get("min_count", 30))
            spec["panels"] = []
            for panel in cfg["panels"]:
                dataset = self.models[panel["pln"]]["dataset"]
                spec["panels"].append({
                    "dataset": self.datasets[dataset].get("paper", dataset),
                    "dataset_used": self.dataset_used(dataset),
                    "pln": {"label": panel.get("pln_label", "PLN"), "model": panel["pln"],
                            "runs": self.run_files(panel["pln"])},
                    "baseline": {"label": panel.get("baseline_label", "2D-TAN (one-stage)"), "model": panel["baseline"],
                                 "runs": self.run_files(panel["baseline"])},
                })
        return spec

    def figure_inputs(self, figure: str) -> list[str]:
        spec = self.figure_spec(figure)
        if figure == "fig5":
            return [d["lengths"] for d in spec["datasets"]]
        if figure == "fig7":
            return [spec["score_maps"]]
        return [run["predictions"] for p in spec["panels"] for side in ("pln", "baseline") for run in p[side]["runs"]]

    def table_outputs(self, table: str) -> list[str]:
        return [f"{self.tables_dir}/{table}.{ext}" for ext in TABLE_FORMATS]

    def figure_outputs(self, figure: str) -> list[str]:
        out = [f"{self.figures_dir}/{figure}.{ext}" for ext in FIGURE_FORMATS]
        return out + ([f"{self.figures_dir}/{figure}.csv"] if figure == "fig8" else [])

    def summary_spec(self) -> dict[str, Any]:
        """What the summary page links: every table and figure file, relative to the page."""
        here = Path(self.summary).parent
        rel = lambda p: Path(p).relative_to(here).as_posix() if Path(p).is_relative_to(here) else \
            Path("../" * len(here.parts) + p).as_posix()
        return {
            **self.meta(),
            "tables": [{"name": t, "title": self.tables[t].get("title", t),
                        "csv": self.table_outputs(t)[0],
                        "files": {Path(f).suffix.lstrip("."): rel(f) for f in self.table_outputs(t)}}
                       for t in TABLES if t in self.tables],
            "figures": [{"name": f, "files": {Path(p).suffix.lstrip("."): rel(p) for p in self.figure_outputs(f)}}
                        for f in FIGURES if f in self.figures],
            "runs_root": self.runs_root,
            "models": [self.model_note(m) for m in self.models],
            "claims": {ext: rel(f) for ext, f in self.claims_outputs().items() if ext != "parts"},
            "resolving_power": rel(self.resolving_power_output()) if self.resolving_power_output() else None,
        }

    def claims_outputs(self) -> dict[str, str]:
        """The claims report's files (``claims.output`` + ``.csv`` / ``.md`` / ``_parts.csv``), if declared."""
        if not self.claims.get("list"):
            return {}
        out = self.claims.get("output", "results/claims")
        return {"csv": f"{out}.csv", "md": f"{out}.md", "parts": f"{out}_parts.csv"}

    def resolving_power_output(self) -> str | None:
        """The resolving-power page (``claims.resolving_power``), if claims are declared."""
        return self.claims.get("resolving_power", "results/resolving_power.md") if self.claims.get("list") else None

    def all_reports(self) -> list[str]:
        """The claims report and the resolving-power page (part of ``all``)."""
        files = list(self.claims_outputs().values())
        return files + ([self.resolving_power_output()] if self.resolving_power_output() else [])

    def all_tables(self) -> list[str]:
        return [f for t in TABLES if t in self.tables for f in self.table_outputs(t)]

    def all_figures(self) -> list[str]:
        return [f for fig in FIGURES if fig in self.figures for f in self.figure_outputs(fig)]

    # ------------------------------------------------------------------------------------------
    # Checks

    def _check_references(self) -> None:
        where = self.setting_file
        for model, entry in self.models.items():
            if entry["dataset"] not in self.datasets:
                raise ConfigError(f"{where}: models.{model}.dataset: unknown dataset {entry['dataset']!r}; "
                                  f"declare it under datasets (known: {', '.join(self.datasets)})")
        for table, cfg in self.tables.items():
            if table not in TABLES:
                raise ConfigError(f"{where}: tables.{table}: unknown table; choose from {', '.join(TABLES)}")
            if table == "table1":
                self._check_datasets(cfg.get("datasets", []), f"tables.{table}.datasets")
                continue
            titles = [b.get("title", self.datasets.get(b["dataset"], {}).get("paper", b["dataset"]))
                      for b in cfg["blocks"]]
            if len(set(titles)) != len(titles):
                raise ConfigError(f"{where}: tables.{table}.blocks: block titles must differ, got {titles}; "
                                  "give each block a title")
            for b, block in enumerate(cfg["blocks"]):
                self._check_datasets([block["dataset"]], f"tables.{table}.blocks[{b}].dataset")
                for metric in block["metrics"]:
                    parse_metric(metric)
                for r, row in enumerate(block["rows"]):
                    key = f"tables.{table}.blocks[{b}].rows[{r}]"
                    self._check_model(row["model"], f"{key}.model")
                    if "test_against" in row:
                        self._check_model(row["test_against"], f"{key}.test_against")
        for figure, cfg in self.figures.items():
            if figure not in FIGURES:
                raise ConfigError(f"{where}: figures.{figure}: unknown figure; choose from {', '.join(FIGURES)}")
            if figure == "fig5":
                self._check_datasets(cfg.get("datasets", []), "figures.fig5.datasets")
            elif figure == "fig7":
                self._check_model(cfg["model"], "figures.fig7.model")
                if self.kind(cfg["model"]) != "train":
                    raise ConfigError(f"{where}: figures.fig7.model: {cfg['model']!r} has no score maps (not trained)")
            else:
                for p, panel in enumerate(cfg["panels"]):
                    self._check_model(panel["pln"], f"figures.fig8.panels[{p}].pln")
                    self._check_model(panel["baseline"], f"figures.fig8.panels[{p}].baseline")
                edges = cfg.get("edges", [])
                if (len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:]))
                        or edges[0] < 0 or edges[-1] > 1):
                    raise ConfigError(f"{where}: figures.fig8.edges: give two or more increasing relative "
                                      f"lengths in [0, 1], got {edges}")

    def _check_model(self, model: str, key: str) -> None:
        if model not in self.models:
            raise ConfigError(f"{self.setting_file}: {key}: unknown model {model!r}; declare it under models")

    def _check_datasets(self, datasets: list[str], key: str) -> None:
        for d in datasets:
            if d not in self.datasets:
                raise ConfigError(f"{self.setting_file}: {key}: unknown dataset {d!r}; "
                                  f"known: {', '.join(self.datasets)}")


def pln_command(configured: str | None) -> str:
    """The ``pln`` command as a shell fragment: the configured one (as written, it may hold
    arguments), else the one beside this Python (quoted: its path may hold spaces), else ``pln``."""
    if configured:
        return configured
    beside = Path(sys.executable).with_name("pln")
    return shlex.quote(str(beside)) if beside.exists() else "pln"


def real_data_inputs(values: dict[str, Any], annotations_only: bool = False) -> list[str]:
    """The user-provided data files an experiment config reads (annotations, features, GloVe).

    Synthetic datasets are generated, so only their annotation folder (``real-annotations``
    mode) and GloVe file count. They are job inputs: a missing file stops the dry run.
    """
    data = values.get("data", {})
    synthetic = str(data.get("dataset", "")).startswith("synthetic-")
    annotations = data.get("annotation_dir")
    if synthetic and data.get("synthetic", {}).get("mode", "full") != "real-annotations":
        annotations = None
    if annotations_only:
        return [annotations] if annotations else []
    features = None if synthetic else data.get("feature_file") or data.get("feature_dir")
    files = [annotations, features, data.get("glove")]
    return [f for f in files if f]


def write_run_config(values: dict[str, Any], path: str | Path, log: str | Path | None = None) -> None:
    """Validate one experiment config and write it as YAML (atomically); note it in ``log``."""
    import yaml

    from pln.utils import atomic_write_text

    config_from_dict(values, str(path))
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))
    if log is not None:
        atomic_write_text(log, f"wrote {path}\n")



def setting_mark_path(tables_dir: str) -> str:
    """The marker of the setting that built the shared tables and figures (``results/.setting``)."""
    return os.path.join(os.path.dirname(tables_dir) or ".", ".setting")


def write_setting_mark(path: str | Path, setting: str, log: str | Path | None = None) -> None:
    """Write the marker (the job of rule ``setting_mark``; never while the workflow is parsed)."""
    from pln.utils import atomic_write_text

    atomic_write_text(path, f"{setting}\n")
    if log is not None:
        atomic_write_text(log, f"wrote {path}\n")
