"""The checks of a workflow config's names: every dataset and model a model, table or figure
names is declared, every table and figure is one the workflow knows, table blocks have distinct
titles and known metrics, Fig. 7 reads a trained model and Fig. 8's length edges are valid.
Each refusal is one ConfigError naming the config file and the key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pln.errors import ConfigError
from pln.plan.outputs import FIGURES, TABLES, parse_metric

if TYPE_CHECKING:
    from pln.plan.plan import Plan


def check_references(plan: Plan) -> None:
    """Refuse a config whose models, tables or figures name something undeclared or unknown."""
    for model, entry in plan.models.items():
        if entry["dataset"] not in plan.datasets:
            raise ConfigError(f"{plan.setting_file}: models.{model}.dataset: unknown dataset {entry['dataset']!r}; "
                              f"declare it under datasets (known: {', '.join(plan.datasets)})")
    for table, cfg in plan.tables.items():
        _check_table(plan, table, cfg)
    for figure, cfg in plan.figures.items():
        _check_figure(plan, figure, cfg)


def _check_table(plan: Plan, table: str, cfg: dict[str, Any]) -> None:
    where = plan.setting_file
    if table not in TABLES:
        raise ConfigError(f"{where}: tables.{table}: unknown table; choose from {', '.join(TABLES)}")
    if table == "table1":
        _check_datasets(plan, cfg.get("datasets", []), f"tables.{table}.datasets")
        return
    titles = [b.get("title", plan.datasets.get(b["dataset"], {}).get("paper", b["dataset"]))
              for b in cfg["blocks"]]
    if len(set(titles)) != len(titles):
        raise ConfigError(f"{where}: tables.{table}.blocks: block titles must differ, got {titles}; "
                          "give each block a title")
    for b, block in enumerate(cfg["blocks"]):
        _check_datasets(plan, [block["dataset"]], f"tables.{table}.blocks[{b}].dataset")
        for metric in block["metrics"]:
            parse_metric(metric)
        for r, row in enumerate(block["rows"]):
            key = f"tables.{table}.blocks[{b}].rows[{r}]"
            _check_model(plan, row["model"], f"{key}.model")
            if "test_against" in row:
                _check_model(plan, row["test_against"], f"{key}.test_against")


def _check_figure(plan: Plan, figure: str, cfg: dict[str, Any]) -> None:
    where = plan.setting_file
    if figure not in FIGURES:
        raise ConfigError(f"{where}: figures.{figure}: unknown figure; choose from {', '.join(FIGURES)}")
    if figure == "fig5":
        _check_datasets(plan, cfg.get("datasets", []), "figures.fig5.datasets")
    elif figure == "fig7":
        _check_model(plan, cfg["model"], "figures.fig7.model")
        if plan.kind(cfg["model"]) != "train":
            raise ConfigError(f"{where}: figures.fig7.model: {cfg['model']!r} has no score maps (not trained)")
    else:
        for p, panel in enumerate(cfg["panels"]):
            _check_model(plan, panel["pln"], f"figures.fig8.panels[{p}].pln")
            _check_model(plan, panel["baseline"], f"figures.fig8.panels[{p}].baseline")
        edges = cfg.get("edges", [])
        if (len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:]))
                or edges[0] < 0 or edges[-1] > 1):
            raise ConfigError(f"{where}: figures.fig8.edges: give two or more increasing relative "
                              f"lengths in [0, 1], got {edges}")


def _check_model(plan: Plan, model: str, key: str) -> None:
    if model not in plan.models:
        raise ConfigError(f"{plan.setting_file}: {key}: unknown model {model!r}; declare it under models")


def _check_datasets(plan: Plan, datasets: list[str], key: str) -> None:
    for d in datasets:
        if d not in plan.datasets:
            raise ConfigError(f"{plan.setting_file}: {key}: unknown dataset {d!r}; "
                              f"known: {', '.join(plan.datasets)}")
