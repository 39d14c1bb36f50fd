"""HDF5 video features of the public releases, and their resampling to M units (SPEC 2).

| family | file (2D-TAN) | layout | D |
|---|---|---|---|
| tacos | ``tall_c3d_features.hdf5`` | ``f[vid]`` ``[T, D]``, key = video id incl. ``.avi`` | 4096 |
| activitynet | ``sub_activitynet_v1-3.c3d.hdf5`` | ``f[vid]["c3d_features"]`` | 500 |
| charades | ``vgg_rgb_features.hdf5`` (VGG) or an I3D file | ``f[vid]`` | 4096 / 1024 |

The synthetic benchmark writes the same layouts, so it runs through this reader.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from pln.errors import ConfigError, DataError

# A feature value beyond this magnitude marks its row as damaged (bad_rows).
ABSURD_FEATURE = 1e6
# What h5py raises for a file whose internals are damaged.
_H5_FAULTS = (OSError, RuntimeError, KeyError, ValueError)

# (file name of the public release, where to obtain it) per (family, feature kind)
RELEASES = {
    ("tacos", "c3d"): ("tall_c3d_features.hdf5",
                       "2D-TAN's TACoS C3D features (https://github.com/microsoft/2D-TAN, data/TACoS)"),
    ("activitynet", "c3d"): ("sub_activitynet_v1-3.c3d.hdf5",
                             "the ActivityNet C3D features (http://activity-net.org/challenges/2016/download.html, "
                             "linked from https://github.com/microsoft/2D-TAN, data/ActivityNet)"),
    ("charades", "vgg"): ("vgg_rgb_features.hdf5",
                          "2D-TAN's Charades-STA VGG features (https://github.com/microsoft/2D-TAN, data/Charades-STA)"),
    ("charades", "i3d"): ("i3d_features.hdf5",
                          "the Charades-STA I3D features of MS-2D-TAN (https://github.com/microsoft/2D-TAN, "
                          "branch ms-2d-tan)"),
}


def release_of(family: str, kind: str) -> tuple[str, str]:
    """(file name, where to obtain it) of the public feature release for a family and kind."""
    return RELEASES.get((family, kind), (f"{family} {kind} features (HDF5)", "the dataset's public release"))


class FeatureStore:
    """Read-only access to one HDF5 feature file: ``get(video_id) -> [T, D]`` float32.

    The file is opened lazily, once per process (safe with forked DataLoader workers).
    ``feature_dim`` (``model.feature_dim``) must equal the file's feature size.
    """

    def __init__(self, path: str | Path, family: str, feature_dim: int | None = None,
                 kind: str = "c3d") -> None:
        self.path = Path(path)
        self.family = family
        if not self.path.is_file():
            name, where = release_of(family, kind)
            raise DataError(f"feature file {self.path} not found: expected {name}, {where}; "
                            "set data.feature_file to its path")
        self._file: h5py.File | None = None
        self._pid = -1
        self.dim = self._probe_dim()
        if feature_dim is not None and feature_dim != self.dim:
            raise ConfigError(f"model.feature_dim={feature_dim} but {self.path} holds {self.dim}-d features; "
                              f"set model.feature_dim to {self.dim}")

    # ------------------------------------------------------------------------------------------

    def _open(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except _H5_FAULTS as exc:
                raise DataError(f"{self.path}: cannot read the HDF5 file ({exc}); it may be truncated or "
                                "corrupt: download it again") from None
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1
        return state

    def _damaged(self, exc: Exception) -> DataError:
        """The error for a file whose header reads but whose internals do not (h5py then raises
        RuntimeError, KeyError, OSError or ValueError with HDF5's own words)."""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        return DataError(f"{self.path}: damaged HDF5 file ({first}) -- download or generate it again")

    def _key(self, video_id: str) -> str | None:
        f = self._open()
        try:
            if video_id in f:
                return video_id
            if self.family == "tacos" and not video_id.endswith(".avi") and video_id + ".avi" in f:
                return video_id + ".avi"
        except _H5_FAULTS as exc:
            raise self._damaged(exc) from None
        return None

    def _dataset(self, key: str) -> h5py.Dataset:
        try:
            return self._checked_dataset(key)
        except _H5_FAULTS as exc:
            raise self._damaged(exc) from None

    def _checked_dataset(self, key: str) -> h5py.Dataset:
        node = self._open()[key]
        if isinstance(node, h5py.Group):
            if "c3d_features" in node:
                node = node["c3d_features"]
            else:
                children = [v for v in node.values() if isinstance(v, h5py.Dataset)]
                if len(children) != 1:
                    raise DataError(f"{self.path}: group {key!r} has no 'c3d_features' dataset")
                node = children[0]
        if node.ndim != 2:
            raise DataError(f"{self.path}: features of {key!r} have shape {node.shape}, expected [T, D]")
        if node.dtype.kind not in "fiu":
            raise DataError(f"{self.path}: features of {key!r} are of type {node.dtype}, not numbers -- "
                            "point data.feature_file at the feature file of the release")
        return node

    def _probe_dim(self) -> int:
        f = self._open()
        try:
            first = next(iter(f), None)
        except _H5_FAULTS as exc:
            raise self._damaged(exc) from None
        if first is None:
            raise DataError(f"{self.path}: the HDF5 file holds no video features")
        return int(self._dataset(first).shape[1])

    def signature(self) -> dict:
        """Changes whenever the file is replaced (cache key)."""
        from pln.data.cache import file_signature

        return file_signature(self.path)

    def has(self, video_id: str) -> bool:
        """Whether the file holds features for ``video_id``."""
        return self._key(video_id) is not None

    def get(self, video_id: str) -> np.ndarray:
        """Raw features ``[T, D]`` float32 of one video, as stored (see :func:`zero_bad_rows`)."""
        key = self._key(video_id)
        if key is None:
            raise DataError(f"{self.path}: no features for video {video_id!r}; the feature file does not "
                            "match the annotation files")
        node = self._dataset(key)
        if node.shape[1] != self.dim:
            raise DataError(f"{self.path}: video {video_id!r} has {node.shape[1]}-d features, the file's "
                            f"first video {self.dim}-d -- the file mixes feature kinds: use one release")
        try:
            raw = np.asarray(node[()], dtype=np.float32)
        except _H5_FAULTS as exc:
            raise DataError(f"{self.path}: cannot read the features of {video_id!r} ({exc}); the file may "
                            "be truncated or corrupt -- download it again") from None
        if raw.shape[0] == 0:
            raise DataError(f"{self.path}: video {video_id!r} has no feature rows")
        return raw

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def bad_rows(raw: np.ndarray) -> np.ndarray:
    """``[T, D] -> bool [T]``: rows holding a NaN or Inf, or a value beyond ``ABSURD_FEATURE``
    in magnitude (damage: real features are activations of order 1 to 100, and such values
    overflow the L2 norm)."""
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(raw).all(axis=1) | (np.abs(raw) > ABSURD_FEATURE).any(axis=1)


def zero_bad_rows(raw: np.ndarray) -> tuple[np.ndarray, int]:
    """Set every damaged row (:func:`bad_rows`) to zero: ``[T, D] -> ([T, D], rows zeroed)``.

    A zero row stays zero after L2 normalisation, so the video keeps its time axis.
    """
    bad = bad_rows(raw)
    n_bad = int(bad.sum())
    if n_bad:
        raw = raw.copy()
        raw[bad] = 0.0
    return raw, n_bad


def resample_units(raw: np.ndarray, m: int) -> np.ndarray:
    """L2-normalise rows, then average into ``m`` units by 2D-TAN's bins: ``[T, D] -> [M, D]``.

    Boundaries ``b_k = min(round(k * T / M), T - 1)``, k = 0..M (round half to even, as torch
    and numpy do); unit k is the mean of rows ``[b_k, b_{k+1})``, or row ``b_k`` when that range
    is empty. ``np.add.reduceat`` implements exactly this rule.
    """
    raw = np.asarray(raw, dtype=np.float32)
    t = raw.shape[0]
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    x = raw / np.maximum(norms, 1e-12)
    bounds = np.minimum(np.round(np.arange(m + 1) * t / m).astype(np.int64), t - 1)
    sums = np.add.reduceat(x, bounds, axis=0, dtype=np.float64)[:m]
    counts = np.maximum(bounds[1:] - bounds[:-1], 1)
    return (sums / counts[:, None]).astype(np.float32)
