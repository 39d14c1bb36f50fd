"""HDF5 feature reader on small generated files, and 2D-TAN's unit resampling."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from pln.data.features import FeatureStore, resample_units, zero_bad_rows
from pln.errors import ConfigError, DataError


def test_resample_units_bins_by_hand() -> None:
    # T=3, M=4: b = min(round([0, .75, 1.5, 2.25, 3]), 2) = [0, 1, 2, 2, 2]
    raw = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]], dtype=np.float32)
    out = resample_units(raw, 4)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], atol=1e-6)
    # T=8, M=4: b = [0, 2, 4, 6, 7]; the last unit is row 6 alone (row 7 is never used)
    raw = np.zeros((8, 2), dtype=np.float32)
    raw[:, 0] = 1.0
    raw[7] = [0.0, 1.0]
    raw[1] = [0.0, 1.0]
    out = resample_units(raw, 4)
    np.testing.assert_allclose(out, [[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], atol=1e-6)


def test_zero_rows_stay_zero_and_nonfinite_rows_are_counted() -> None:
    raw = np.ones((4, 3), dtype=np.float32)
    raw[1, 2] = np.nan
    raw[3, 0] = np.inf
    clean, n_bad = zero_bad_rows(raw)
    assert n_bad == 2 and np.isnan(raw[1, 2])  # the input is not modified
    np.testing.assert_array_equal(clean[[1, 3]], 0.0)
    units = resample_units(clean, 4)
    np.testing.assert_allclose(np.linalg.norm(units, axis=1), [1.0, 0.0, 1.0, 0.0], atol=1e-6)


@pytest.fixture
def h5files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {f: tmp_path / f"{f}.hdf5" for f in ("tacos", "activitynet", "charades")}
    with h5py.File(paths["tacos"], "w") as f:
        f["s13-d21.avi"] = rng.standard_normal((10, 6)).astype(np.float32)
    with h5py.File(paths["activitynet"], "w") as f:
        f.create_group("v_abc").create_dataset("c3d_features", data=rng.standard_normal((7, 5)))
    with h5py.File(paths["charades"], "w") as f:
        f["AO8RW"] = rng.standard_normal((4, 3)).astype(np.float32)
    return paths


def test_layouts(h5files: dict[str, Path]) -> None:
    tacos = FeatureStore(h5files["tacos"], "tacos", 6)
    assert tacos.get("s13-d21.avi").shape == (10, 6) and tacos.has("s13-d21")  # the .avi may be omitted
    anet = FeatureStore(h5files["activitynet"], "activitynet", 5)
    got = anet.get("v_abc")
    assert got.shape == (7, 5) and got.dtype == np.float32
    assert FeatureStore(h5files["charades"], "charades", 3).get("AO8RW").shape == (4, 3)


def test_bad_inputs(h5files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.feature_dim=4096 .* 5-d"):
        FeatureStore(h5files["activitynet"], "activitynet", 4096)
    store = FeatureStore(h5files["charades"], "charades", 3)
    assert not store.has("ZZZZZ")
    with pytest.raises(DataError, match="no features for video 'ZZZZZ'"):
        store.get("ZZZZZ")
    with pytest.raises(DataError, match=r"tall_c3d_features.hdf5.*2D-TAN"):
        FeatureStore(tmp_path / "nope.hdf5", "tacos", 4096)
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(h5files["tacos"].read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        FeatureStore(truncated, "tacos", 6)
