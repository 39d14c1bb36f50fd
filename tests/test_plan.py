"""The plan's place in the layers: pln.plan loads no reporting code, and the run folder's file
names come from RunDir."""

from __future__ import annotations

import subprocess
import sys

from pln.engine.run_dir import RunDir


def test_the_plan_imports_no_reporting_code():
    code = ("import sys, pln.plan.plan, pln.plan.loading, pln.plan.jobs; "
            "print(sorted(m for m in sys.modules if m.startswith(('pln.report', 'pln.model', 'pln.data'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plan_paths_use_the_run_folder_names(tmp_path):
    from pln.plan.plan import Plan, Run

    config = {"setting": "s", "seeds": [0], "datasets": {"d": {"config": {"data": {"dataset": "synthetic-charades"}}}},
              "models": {"m": {"dataset": "d"}}}
    plan = Plan(config)
    run = Run("m", "d", "train", 0)
    files = plan.run_files("m")
    assert files == [{"seed": 0, "metrics": plan.run_file(run, RunDir.TEST_METRICS),
                      "predictions": plan.run_file(run, RunDir.PREDICTIONS)}]
    assert files[0]["metrics"] == "runs/s/m/seed0/test_metrics.json"
    assert RunDir(tmp_path).test_metrics.name == RunDir.TEST_METRICS
    assert set(RunDir.PRIOR_RESULTS) < set(RunDir.TRAIN_RESULTS)
