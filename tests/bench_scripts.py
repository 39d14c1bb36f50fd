"""Load a script of ``benchmarks/`` as a module, so tests can call its functions directly.

The scripts are not part of the ``pln`` package (they are run as ``python benchmarks/<name>.py``);
each is loaded once per test session under its own name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str) -> ModuleType:
    """The module of ``benchmarks/<name>.py``, registered in ``sys.modules`` as ``name`` (its
    dataclasses look their module up there)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"benchmarks/{name}.py not found"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
