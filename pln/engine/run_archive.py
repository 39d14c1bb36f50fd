"""A run folder as one file, to carry it to another machine or checkout, where ``pln train`` and
the workflow take it up as if it had been trained there.

- :func:`pack_run` -- one run folder into a ``.tar.xz``: a finished run without its checkpoints
  (its results are all that tables, figures and claims read), unless asked for them or the run
  ran to ``train.max_epochs`` (``pln train --extend`` may continue it); an unfinished run with
  them, so that ``pln train`` resumes it from its last epoch;
- :func:`unpack_run` -- an archive into a run folder that holds no results yet;
- :func:`pack_runs` / :func:`unpack_runs` -- every run folder under a root, mirrored as
  ``<root>/<model>/seed<k>`` <-> ``<archive>/<model>/seed<k>.tar.xz``.

Packing is deterministic (members sorted, their times and owners fixed; xz, whose stream holds no
time), so packing an unchanged run again gives the same bytes; with xz, the 3.2 MB of result
files of a TACoS demo run (2,501 test queries) pack to 350 kB. Both directions hold the run folder's lock, so a run
being trained is never packed half-written, nor unpacked into. Unpacking verifies the result
files against their digests and moves the completeness mark (``test_metrics.json``) in last: an
interrupted unpack leaves a run that ``pln train`` resumes or retrains, never one that looks finished.
"""

from __future__ import annotations

import io
import lzma
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pln.digest import sidecar
from pln.engine.run_dir import RunDir, move_into_run_folder, verify_run_file
from pln.engine.run_lock import LOCK_NAME, RunLockedError, hold_run_lock
from pln.errors import ConfigError, DataError
from pln.utils import atomic_write

SUFFIX = ".tar.xz"


@dataclass(frozen=True)
class Outcome:
    """What became of one run folder or archive: ``action`` is ``packed``, ``unpacked`` or
    ``left``; ``source`` is what was (or would have been) read, the run folder when packing and
    the archive when unpacking, ``target`` what was (or would have been) written; ``detail`` says
    why, or what the archive holds."""

    source: Path
    target: Path
    action: str
    detail: str

    def line(self) -> str:
        return f"{self.action:8s} {self.source} -> {self.target} ({self.detail})"


def _members(run: RunDir, checkpoints: bool) -> list[Path]:
    """The files of a run folder that an archive carries, sorted by their path in the folder."""
    files = []
    for path in sorted(run.root.rglob("*")):
        rel = path.relative_to(run.root)
        if not path.is_file() or path.is_symlink() or rel.name == LOCK_NAME or rel.name.endswith(".tmp"):
            continue
        if rel.parts[0] == RunDir.CHECKPOINTS and not checkpoints:
            continue
        files.append(rel)
    return files


def _result_files(run: RunDir) -> list[Path]:
    """The digested result files present in a run folder (:data:`RunDir.TRAIN_RESULTS`)."""
    return [run.root / name for name in RunDir.TRAIN_RESULTS if (run.root / name).is_file()]


def _contents(finished: bool, checkpoints: bool, files: int, capped: bool = False) -> str:
    """What an archive holds, in the words both :func:`pack_run` and :func:`unpack_run` print;
    ``capped``: a finished run that ran to its epoch cap (:func:`ran_to_the_cap`)."""
    if not finished:
        state = "unfinished, resumable"
    elif capped:
        state = "finished at its epoch cap, extendable"
    else:
        state = "finished"
    return f"{state}, {'with' if checkpoints else 'without'} checkpoints, {files} files"


def ran_to_the_cap(run: RunDir) -> bool:
    """Whether finished run ``run`` trained all its ``train.max_epochs`` (its stopping rule, if
    any, never fired): a longer budget would continue it (``pln train --extend``)."""
    epochs_run = run.read_test_metrics().get("run", {}).get("epochs_run")
    return epochs_run is not None and int(epochs_run) >= run.read_config().train.max_epochs


def pack_run(run_dir: str | Path, archive: str | Path, checkpoints: bool = False) -> Outcome:
    """Write run folder ``run_dir`` to ``archive`` (a ``.tar.xz``, atomically) and say what it holds.

    A finished run (``test_metrics.json`` present) is packed without ``checkpoints/`` unless
    ``checkpoints`` or it ran to its cap (:func:`ran_to_the_cap`: ``--extend`` continues it from
    ``last.pt``); its result files are verified first (:class:`DataError` for a damaged one).
    An unfinished run is packed with its checkpoints, or left (nothing written) when it has no
    ``last.pt`` to resume from. :class:`ConfigError` for a folder without ``config.yaml``;
    :class:`~pln.engine.run_lock.RunLockedError` while a process writes it.
    """
    run, archive = RunDir(Path(run_dir)), Path(archive)
    if not run.config.is_file():
        raise ConfigError(f"{run.root}: not a run folder (no {RunDir.CONFIG}); give a folder `pln train` wrote")
    with hold_run_lock(run.root):
        finished = run.is_complete()
        if finished:
            for path in _result_files(run):
                verify_run_file(path)
        elif not run.last.is_file():
            return Outcome(run.root, archive, "left", f"unfinished, no {RunDir.CHECKPOINTS}/{RunDir.LAST} to resume from")
        capped = finished and ran_to_the_cap(run)
        keep = checkpoints or capped or not finished
        names = _members(run, keep)

        def write(tmp: str) -> None:
            with tarfile.open(tmp, mode="w:xz", format=tarfile.PAX_FORMAT) as tar:
                for rel in names:
                    info = tarfile.TarInfo(rel.as_posix())
                    data = (run.root / rel).read_bytes()
                    info.size, info.mode, info.mtime = len(data), 0o644, 0
                    tar.addfile(info, io.BytesIO(data))

        atomic_write(archive, write)
    return Outcome(run.root, archive, "packed", f"{_contents(finished, keep, len(names), capped)}, "
                                                f"{archive.stat().st_size / 1e3:,.0f} kB")


def _extract(archive: Path, into: Path) -> None:
    """Extract the regular files of ``archive`` into folder ``into``; :class:`DataError` naming
    the archive for one that is not a readable run archive."""
    hint = "pack the run again (`pln pack-runs`) or delete the archive"
    try:
        with tarfile.open(archive, mode="r:xz") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    raise DataError(f"{archive}: holds {member.name!r}, not a plain file -- {hint}")
            tar.extractall(into, filter="data")
    except FileNotFoundError:
        raise DataError(f"{archive}: no such archive -- give the path of a `pln pack-runs` archive") from None
    except (tarfile.TarError, lzma.LZMAError, EOFError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{archive}: not a readable run archive ({reason[:100]}) -- {hint}") from None
    if not (into / RunDir.CONFIG).is_file():
        raise DataError(f"{archive}: holds no {RunDir.CONFIG}, so it is not a run archive -- {hint}")


def unpack_run(archive: str | Path, run_dir: str | Path) -> Outcome:
    """Restore ``archive`` into run folder ``run_dir`` and say what it held.

    A folder that holds results already (a checkpoint or a result file) is left as it is: delete
    it to restore the archive in its place. The archive's result files are verified against their
    digests before anything moves (:class:`DataError` naming the archive). The files get the time
    of the unpack, not the fixed time of the archive, so that a workflow does not take them for
    outputs older than their inputs.
    """
    archive, run = Path(archive), RunDir(Path(run_dir))
    if run.has_results():
        return Outcome(archive, run.root, "left", "the run folder holds results already; delete it to restore the archive")
    run.root.mkdir(parents=True, exist_ok=True)
    with hold_run_lock(run.root):
        if run.has_results():  # written between the look above and the lock
            return Outcome(archive, run.root, "left", "the run folder holds results already")
        tmp = Path(tempfile.mkdtemp(prefix=f".{run.root.name}.", suffix=".tmp", dir=run.root.parent))
        try:
            _extract(archive, tmp)
            restored = RunDir(tmp)
            for path in _result_files(restored):
                try:
                    verify_run_file(path)
                except DataError:
                    raise DataError(f"{archive}: its {path.name} does not match its digest "
                                    f"{sidecar(path).name} -- pack the run again from a good copy") from None
            finished = restored.is_complete()
            with_checkpoints = (tmp / RunDir.CHECKPOINTS).is_dir()
            count = sum(1 for p in tmp.rglob("*") if p.is_file())
            for path in sorted(tmp.rglob("*"), key=lambda p: p.name == RunDir.TEST_METRICS):
                if path.is_file():
                    os.utime(path)
            move_into_run_folder(tmp, run)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return Outcome(archive, run.root, "unpacked", _contents(finished, with_checkpoints, count))


def run_folders(root: str | Path) -> list[Path]:
    """Every run folder under ``root`` (a folder with a ``config.yaml``), sorted; hidden folders
    (the temporary copies of an interrupted placement or unpack) are not run folders."""
    root = Path(root)
    return sorted(config.parent for config in root.rglob(RunDir.CONFIG)
                  if not any(part.startswith(".") for part in config.parent.relative_to(root).parts))


def pack_runs(root: str | Path, dest: str | Path, checkpoints: bool = False) -> list[Outcome]:
    """:func:`pack_run` for every run folder under ``root``, into ``dest`` mirroring the folders
    (``<root>/a/seed0`` -> ``<dest>/a/seed0.tar.xz``). A run being trained is left, with the
    reason, and the others packed."""
    root, dest = Path(root), Path(dest)
    outcomes = []
    for folder in run_folders(root):
        archive = dest / (folder.relative_to(root).as_posix() + SUFFIX)
        try:
            outcomes.append(pack_run(folder, archive, checkpoints))
        except RunLockedError:
            outcomes.append(Outcome(folder, archive, "left", "being trained now; pack it when its process has ended"))
    return outcomes


def unpack_runs(src: str | Path, root: str | Path) -> list[Outcome]:
    """:func:`unpack_run` for every archive under ``src`` (``*.tar.xz``), each into the run folder
    under ``root`` that it mirrors."""
    src, root = Path(src), Path(root)
    archives = sorted(src.rglob("*" + SUFFIX))
    return [unpack_run(a, root / a.relative_to(src).as_posix()[: -len(SUFFIX)]) for a in archives]
