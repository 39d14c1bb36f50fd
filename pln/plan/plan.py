"""The experiment plan of one workflow config (one setting): its runs, seeds and resources, every
run's experiment config and folder, and the resolved specification and files of every table and
figure (the package docstring of :mod:`pln.plan` describes the config and the paths)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pln.config import config_from_dict
from pln.engine.run_dir import RunDir
from pln.errors import ConfigError
from pln.plan.outputs import FIGURE_FORMATS, FIGURES, TABLE_FORMATS, TABLES
from pln.plan.references import check_references
from pln.plan.run_config import config_note, resolve_run_config


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
        check_references(self)
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

    def trained_models(self) -> list[str]:
        """The used models (:meth:`used_models`) that are trained, not prior-only baselines."""
        return [m for m in self.used_models() if self.kind(m) == "train"]

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

    def _resolve_run_configs(self) -> dict[str, dict[str, Any]]:
        """Every experiment config the workflow writes, by config name, validated."""
        out: dict[str, dict[str, Any]] = {}
        for dataset in self.datasets:
            out[f"stats-{dataset}"] = resolve_run_config(self.config, dataset, {}, f"stats-{dataset}", None, 1)
        for run in self.all_runs():
            fragment = self.models[run.model].get("config", {})
            threads = int(self.resources(run.model)["threads"])
            out[self.config_name(run)] = resolve_run_config(self.config, run.dataset, fragment, run.model,
                                                            run.seed, threads)
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
        if self.kind(model) == "prior":
            return f"{model}: prior-only baseline (most common training moment, no learning)"
        cfg = config_from_dict(self.run_configs[self.config_name(self.runs(model)[0])])
        parts = config_note(cfg) + [f"seeds {', '.join(map(str, self.seeds(model)))}"]
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

    def training_inputs(self) -> list[str]:
        """What training every run of this setting's outputs needs, short of the training itself:
        each trained run's config and each of their datasets' statistics (which generate a
        synthetic dataset). Made where Snakemake runs, they let a machine without it train the
        runs (``benchmarks/gpu_train_setting.sh``) and hand the run folders back."""
        runs = [r for m in self.used_models() for r in self.runs(m) if r.kind != "prior"]
        datasets = dict.fromkeys(r.dataset for r in runs)
        return ([self.config_path(self.config_name(r)) for r in runs]
                + [f"{self.stats_dir(d)}/table1.csv" for d in datasets])
