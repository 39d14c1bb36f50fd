"""Video features as one file per video in a folder (``data.feature_dir``, JSONL datasets).

``<vid>.npz`` holding a ``features`` array ``[T, D]`` (the moment-DETR / Lighthouse layout), or
``<vid>.npy`` holding ``[T, D]``. :class:`FolderFeatureStore` has the interface of
:class:`pln.data.features.FeatureStore` (``dim``, ``has``, ``get``, ``signature``, ``close``), so
the dataset builder reads either.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pln.errors import ConfigError, DataError

SUFFIXES = (".npz", ".npy")
NPZ_KEY = "features"


class FolderFeatureStore:
    """Read-only access to a folder of per-video feature files: ``get(video_id) -> [T, D]`` float32."""

    def __init__(self, folder: str | Path, feature_dim: int | None = None) -> None:
        self.path = Path(folder)
        if not self.path.is_dir():
            raise DataError(f"feature folder {self.path} not found; set data.feature_dir to a folder of "
                            "<vid>.npz (array 'features' [T, D]) or <vid>.npy files")
        self._files = {p.stem: p for p in sorted(self.path.iterdir())
                       if p.suffix in SUFFIXES and p.is_file()}
        if not self._files:
            raise DataError(f"{self.path}: no .npz or .npy feature file in the folder")
        self.dim = int(self._load(next(iter(self._files))).shape[1])
        if feature_dim is not None and feature_dim != self.dim:
            raise ConfigError(f"model.feature_dim={feature_dim} but {self.path} holds {self.dim}-d features; "
                              f"set model.feature_dim to {self.dim}")

    def _load(self, video_id: str) -> np.ndarray:
        path = self._files[video_id]
        try:
            if path.suffix == ".npz":
                with np.load(path) as archive:
                    if NPZ_KEY not in archive:
                        raise DataError(f"{path}: no {NPZ_KEY!r} array (holds {', '.join(archive.files)}); "
                                        f"store the features [T, D] under the key {NPZ_KEY!r}")
                    raw = archive[NPZ_KEY]
            else:
                raw = np.load(path)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot read the features ({exc}); the file may be truncated: "
                            "write it again") from None
        if raw.ndim != 2:
            raise DataError(f"{path}: features have shape {raw.shape}, expected [T, D]")
        if raw.shape[0] == 0:
            raise DataError(f"{path}: video {video_id!r} has no feature rows")
        return np.asarray(raw, dtype=np.float32)

    def has(self, video_id: str) -> bool:
        """Whether the folder holds features for ``video_id``."""
        return video_id in self._files

    def get(self, video_id: str) -> np.ndarray:
        """Raw features ``[T, D]`` float32 of one video, as stored."""
        if video_id not in self._files:
            raise DataError(f"{self.path}: no {video_id}.npz or {video_id}.npy; the feature folder does not "
                            "match the annotation files")
        raw = self._load(video_id)
        if raw.shape[1] != self.dim:
            raise DataError(f"{self._files[video_id]}: {raw.shape[1]}-d features, the folder's others are "
                            f"{self.dim}-d")
        return raw

    def signature(self) -> dict[str, Any]:
        """Changes whenever a file of the folder is added, removed or replaced (cache key)."""
        files = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in self._files.values()]
        return {"folder": str(self.path.resolve()), "files": files}

    def close(self) -> None:
        """Nothing to close (files are opened per read)."""
