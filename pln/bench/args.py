"""The arguments of `pln bench`. Imports no torch: ``pln --help`` builds every sub-command's parser."""

from __future__ import annotations

import argparse

from pln.bench.configs import CONFIGS, SWEEP_CONFIGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=32, help="training batch")
    p.add_argument("--eval-batch", type=int, default=64, help="inference and evaluation batch")
    p.add_argument("--width", type=int, default=512, help="hidden and ConvNet channels (512 = the paper)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for ours")
    p.add_argument("--no-reference", action="store_true", help="skip the eager fp32 reference run")
    p.add_argument("--sweep", action="store_true",
                   help=f"also time ours with other speed-only ConvNet settings ({', '.join(SWEEP_CONFIGS)})")
    p.add_argument("--eval-queries", type=int, default=2048,
                   help="queries timed through the evaluation path (0: skip it and the data path)")
    p.add_argument("--data-scale", type=float, default=0.5, help="size of the synthetic splits the "
                   "evaluation and data path read (data.synthetic.scale)")
    p.add_argument("--workers", type=int, default=4, help="data loader workers of the data path")
    p.add_argument("--glove", default=None, help="word vectors (data.glove) of the synthetic splits; "
                   "default the built-in GloVe 6B 50-d")
    p.add_argument("--work", default=None, help="folder for the synthetic splits (default: a temporary one)")
    p.add_argument("--out", default=None, help="CSV path (default results/benchmarks/<device>.csv)")
