"""The SLURM profile against a real (one-node, localhost) SLURM cluster.

CI starts the cluster with ``bash .ci/slurm.sh start`` (one fake GPU, partition ``gpu``) before
pytest and stops it afterwards. Without ``sinfo`` on PATH, or when the cluster does not answer,
every test here that needs it is skipped with the reason (a failure instead when
``PLN_REQUIRE_SLURM=1``, as in CI, so a cluster that did not start cannot pass unnoticed).

The cluster has no accounting database, so Snakemake polls job status with ``squeue``
(``--slurm-status-command squeue``); everything else comes from workflow/profiles/slurm as a user
would run it. Every Snakemake call is bounded by ``timeout -k 10 N``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
SMOKE_CONFIG = "config/smoke.yaml"
TABLES_TARGET = "all_tables"
TRAIN_RULE = "train"  # the workflow's training rule (resources: gpu, mem_mb, runtime, cpus_per_task)
TABLES_DIR = "results/tables"
AGGREGATION_RULES = ("table", "figure", "fig8", "summary")  # localrules: never submitted

# Settings only this test cluster needs: no slurmdbd (poll with squeue) and quick first polls.
CI_FLAGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"]
TINY_TIMEOUT_S = 240
SMOKE_TIMEOUT_S = 1200

GPU_REQUEST = re.compile(r"(--gpus=1|--gres=gpu:1)(\s|$)")
SUBMITTED_ID = re.compile(r"submitted with SLURM jobid (\d+)")


# ---------------------------------------------------------------------------------------------
# helpers


def _cluster_problem() -> str | None:
    """Why SLURM tests cannot run here, or None when the cluster answers."""
    if shutil.which("sinfo") is None:
        return "SLURM is not installed (no sinfo on PATH); CI starts one with .ci/slurm.sh start"
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s (is slurmctld running? bash .ci/slurm.sh status)"
    if probe.returncode != 0:
        return f"the SLURM cluster does not answer sinfo: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    """Skip without a cluster; CI sets PLN_REQUIRE_SLURM=1 to make that a failure instead."""
    problem = _cluster_problem()
    if problem and os.environ.get("PLN_REQUIRE_SLURM") == "1":
        pytest.fail(f"PLN_REQUIRE_SLURM=1 but {problem}")
    if problem:
        pytest.skip(problem)


def _profile_partition() -> str:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    return str(profile["default-resources"]["slurm_partition"])


def _job_env() -> dict[str, str]:
    """The environment Snakemake and its SLURM jobs run in (exported with --export=ALL)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake(args: list[str], cwd: Path, timeout_s: int, log: Path) -> subprocess.CompletedProcess[str]:
    """Run Snakemake under ``timeout -k 10 timeout_s``; its whole output goes to ``log``.

    SLURM jobs it submitted are cancelled when it fails, so a broken run leaves nothing queued.
    """
    command = ["timeout", "-k", "10", str(timeout_s), sys.executable, "-m", "snakemake", *args]
    done = subprocess.run(command, cwd=cwd, env=_job_env(), capture_output=True, text=True,
                          timeout=timeout_s + 30)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        job_ids = SUBMITTED_ID.findall(log.read_text())
        if job_ids:
            subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)
    return done


def _failure(done: subprocess.CompletedProcess[str], log: Path) -> str:
    tail = "\n".join(log.read_text().splitlines()[-60:])
    return f"snakemake exited {done.returncode} (124: timed out); log {log}:\n{tail}"


def sbatch_calls(log_text: str) -> dict[str, list[str]]:
    """Rule name -> the sbatch command lines (without the wrapped job) Snakemake logged."""
    calls: dict[str, list[str]] = {}
    for line in log_text.splitlines():
        if "sbatch call:" not in line:
            continue
        call = line.split("sbatch call:", 1)[1].split(" --wrap", 1)[0].strip()
        rule = re.search(r"--comment\s+'?rule_(\w+?)(?:_wildcards_\S*)?'?(?:\s|$)", call)
        calls.setdefault(rule.group(1) if rule else "?", []).append(call)
    return calls


def _copy_repo(dest: Path) -> Path:
    """A copy of the repository's own files (tracked or not ignored), without outputs."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def _local_smoke_root(tmp_path: Path) -> Path:
    """The tables folder of a local ``--cores 2`` run of the smoke config.

    ``PLN_SMOKE_LOCAL_TABLES`` may name the tables folder of a local smoke run made from the same
    tree just before (CI makes one anyway); otherwise the run is made here, in its own copy.
    """
    given = os.environ.get("PLN_SMOKE_LOCAL_TABLES")
    if given:
        return Path(given).resolve()
    local = _copy_repo(tmp_path / "local")
    log = tmp_path / "local.log"
    done = _snakemake([TABLES_TARGET, "--cores", "2", "--configfile", SMOKE_CONFIG], local, SMOKE_TIMEOUT_S, log)
    assert done.returncode == 0, _failure(done, log)
    return local / TABLES_DIR


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop wall-clock columns (seconds, throughput): they differ between any two runs."""
    timing = [c for c in frame.columns if "seconds" in str(c) or str(c).endswith("_per_s")]
    return frame.drop(columns=timing)


# ---------------------------------------------------------------------------------------------
# tests without a cluster


def test_sbatch_calls_parser() -> None:
    log = textwrap.dedent(
        """\
        sbatch call: sbatch --parsable --comment rule_train_wildcards_run_a   -p gpu -t 5 --gpus=1 --wrap="x --gpus=9"
        noise
        sbatch call: sbatch --parsable --comment rule_prep   -p gpu --ntasks=1 -D /w
        """
    )
    calls = sbatch_calls(log)
    assert sorted(calls) == ["prep", "train"]
    assert calls["train"] == ["sbatch --parsable --comment rule_train_wildcards_run_a   -p gpu -t 5 --gpus=1"]
    assert GPU_REQUEST.search(calls["train"][0]) and not GPU_REQUEST.search(calls["prep"][0])


def test_slurm_profile_settings() -> None:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1  # preempted / failed jobs are resubmitted
    assert profile["default-resources"]["slurm_partition"]
    # real clusters have accounting: the plugin's default (sacct) must stay in force there
    assert "slurm-status-command" not in profile


def test_cluster_script_usage() -> None:
    done = subprocess.run(["bash", str(REPO / ".ci" / "slurm.sh"), "nonsense"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "install|start|stop|status" in done.stderr


# ---------------------------------------------------------------------------------------------
# tests on the cluster

_TINY_SNAKEFILE = """\
localrules: gather

rule gather:
    input: "gpu.txt", "cpu.txt"
    output: "all.txt"
    shell: "cat {input} > {output}; echo gather_job=${{SLURM_JOB_ID:-none}} >> {output}"

rule train:
    output: "gpu.txt"
    resources: gpu=0, mem_mb=300, runtime=5, cpus_per_task=1
    shell: "scontrol show job $SLURM_JOB_ID | grep -o -E 'TresPerJob=[^ ]+' > {output}"

rule prep:
    output: "cpu.txt"
    shell: "echo prep_job=$SLURM_JOB_ID > {output}"
"""


@pytest.mark.slurm
def test_profile_submits_gpu_request(slurm_cluster: None, tmp_path: Path) -> None:
    """A throw-away workflow through the real profile: the GPU request reaches SLURM."""
    partitions = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True,
                                timeout=15).stdout.split()
    partition = _profile_partition()
    assert partition in partitions, (
        f"the profile's slurm_partition {partition!r} is not on this cluster ({partitions}); "
        f"start it with PLN_SLURM_PARTITION={partition} bash .ci/slurm.sh start")
    (tmp_path / "Snakefile").write_text(_TINY_SNAKEFILE)
    log = tmp_path / "snakemake.log"
    done = _snakemake(["--profile", str(PROFILE), *CI_FLAGS, "--verbose",
                       "--set-resources", "train:gpu=1"], tmp_path, TINY_TIMEOUT_S, log)
    assert done.returncode == 0, _failure(done, log)

    calls = sbatch_calls(log.read_text())
    assert sorted(calls) == ["prep", "train"]  # gather is a local rule: never submitted
    (train_call,) = calls["train"]
    assert GPU_REQUEST.search(train_call), train_call
    assert f"-p {partition}" in train_call and "--mem 300" in train_call and "-t 5" in train_call
    assert not GPU_REQUEST.search(calls["prep"][0])
    # SLURM itself recorded the GPU, and the local rule ran outside any job
    lines = (tmp_path / "all.txt").read_text().splitlines()
    assert lines[0] == "TresPerJob=gres:gpu:1"
    assert re.fullmatch(r"prep_job=\d+", lines[1])
    assert lines[2] == "gather_job=none"


@pytest.mark.slurm
@pytest.mark.slow
def test_smoke_config_on_slurm_equals_local_run(slurm_cluster: None, tmp_path: Path) -> None:
    """config/smoke.yaml through the slurm profile: GPU requests, and the same tables as locally."""
    for needed in ("Snakefile", SMOKE_CONFIG):
        if not (REPO / needed).exists():
            pytest.skip(f"{needed} does not exist yet")
    on_slurm = _copy_repo(tmp_path / "slurm")

    log = tmp_path / "slurm.log"
    # the target goes first: --configfile and --set-resources take every word that follows
    done = _snakemake([TABLES_TARGET, "--profile", str(on_slurm / "workflow/profiles/slurm"), *CI_FLAGS,
                       "--verbose", "--configfile", SMOKE_CONFIG,
                       # the smoke config trains on CPU (gpu=0); ask for the cluster's (fake) GPU
                       "--set-resources", f"{TRAIN_RULE}:gpu=1"], on_slurm, SMOKE_TIMEOUT_S, log)
    assert done.returncode == 0, _failure(done, log)
    calls = sbatch_calls(log.read_text())
    assert calls.get(TRAIN_RULE), f"no {TRAIN_RULE} job was submitted; rules submitted: {sorted(calls)}"
    for call in calls[TRAIN_RULE]:
        assert GPU_REQUEST.search(call), f"training job submitted without a GPU request: {call}"
    assert not set(calls) & set(AGGREGATION_RULES), f"aggregation was submitted to SLURM: {sorted(calls)}"

    local = _local_smoke_root(tmp_path)
    slurm_tables = sorted(p.relative_to(on_slurm / TABLES_DIR) for p in (on_slurm / TABLES_DIR).rglob("*.csv"))
    local_tables = sorted(p.relative_to(local) for p in local.rglob("*.csv"))
    assert slurm_tables, f"the SLURM run wrote no tables under {TABLES_DIR}"
    assert slurm_tables == local_tables, f"tables differ: SLURM {slurm_tables}, local ({local}) {local_tables}"
    for name in slurm_tables:
        pd.testing.assert_frame_equal(
            _comparable(pd.read_csv(on_slurm / TABLES_DIR / name)), _comparable(pd.read_csv(local / name)),
            check_exact=False, rtol=1e-6, obj=str(name))
