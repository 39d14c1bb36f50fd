"""The background GPU-utilisation sampler (with a fake reader: no GPU needed)."""

from __future__ import annotations

import time

import torch

from pln.engine.gpu_util import UtilisationSampler, nvml_reader


def test_sampler_averages_the_samples_of_its_block():
    values = iter([10.0, 30.0, 50.0, 70.0] + [90.0] * 1000)
    with UtilisationSampler(lambda: next(values), interval=0.01) as s:
        while len(s.samples) < 4:
            time.sleep(0.005)
    count = len(s.samples)
    assert count >= 4 and s.samples[:4] == [10.0, 30.0, 50.0, 70.0]
    assert s.mean() == sum(s.samples) / count
    time.sleep(0.05)
    assert len(s.samples) == count  # stopped when the block ended


def test_sampler_without_a_reader_or_with_a_failing_one_reports_nothing():
    with UtilisationSampler(None, interval=0.01) as s:
        time.sleep(0.03)
    assert s.mean() is None

    def broken() -> float:
        raise RuntimeError("NVML went away")

    with UtilisationSampler(broken, interval=0.01) as s:
        time.sleep(0.03)
    assert s.mean() is None


def test_no_reader_off_cuda():
    assert nvml_reader(torch.device("cpu")) is None
