"""The ``pln`` command line: train, evaluate, predict, baseline-prior, stats, generate,
convert, score, compare, example-jsonl, pack-runs, unpack-runs, bench.

Each sub-command is a parser block in :func:`build_parser` and a ``cmd_*`` handler that imports
its module inside the function, so ``pln --help`` (and argument errors) answer without loading
torch, numpy or pandas. Only torch-free modules are imported at the top (``tests/test_cli.py``
checks it). A new sub-command: one ``cmd_*`` handler and one parser block.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from pln.bench.args import add_arguments as add_bench_arguments
from pln.errors import error_line

DEBUG_ENV = "PLN_DEBUG"


def _load(args: argparse.Namespace):
    from pln.config import load_config

    return load_config(args.config, args.set)


def cmd_train(args: argparse.Namespace) -> int:
    from pln.engine.train import train

    result = train(_load(args), args.out, wait=args.wait, replace_stale=args.replace_stale, extend=args.extend)
    key = result["default"]
    print(json.dumps({"run": str(args.out), "default": key, "metrics": result["metrics"][key]}, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pln.engine.evaluate import evaluate_run
    from pln.utils import atomic_write_json

    result = evaluate_run(args.run, checkpoint=args.checkpoint, split=args.split, strategy=args.strategy,
                          stage=args.stage, nms_threshold=args.nms, device=args.device)
    print(json.dumps(result, indent=2))  # first: a failed write of --out loses nothing
    if args.out:
        atomic_write_json(args.out, result)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from pln.engine.predict import predict

    key, moments = predict(args.checkpoint, args.features, args.video, args.query, duration=args.duration,
                           device=args.device, strategy=args.strategy, stage=args.stage)
    print(f"video {args.video}: {args.query!r} ({key})")
    print(f"{'rank':>4}  {'start (s)':>9}  {'end (s)':>9}  {'score':>6}")
    for rank, (start, end, score) in enumerate(moments, 1):
        print(f"{rank:>4}  {start:9.2f}  {end:9.2f}  {score:6.3f}")
    return 0


def cmd_prior(args: argparse.Namespace) -> int:
    from pln.engine.prior import run_prior

    result = run_prior(_load(args), args.out, wait=args.wait, replace_stale=args.replace_stale)
    print(json.dumps(result["metrics"]["stage1"], indent=2))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from pln.data.stats import moment_lengths, table1
    from pln.utils import atomic_write

    cfg = _load(args)
    t1 = table1(cfg)
    print(t1.to_string(index=False))
    if args.out:
        out = Path(args.out)
        atomic_write(out / "table1.csv", lambda tmp: t1.to_csv(tmp, index=False))
        lengths = moment_lengths(cfg)
        atomic_write(out / "moment_lengths.csv", lambda tmp: lengths.to_csv(tmp, index=False))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from pln.config import is_synthetic_dataset
    from pln.data.dataset import resolve_source

    cfg = _load(args)
    if not is_synthetic_dataset(cfg.data.dataset):
        print(f"{cfg.data.dataset} is a real dataset: nothing to generate")
        return 0
    print(resolve_source(cfg).annotation_dir)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from pln.data.convert import convert

    counts = convert(args.to, args.family, args.source, args.out)
    print(json.dumps({"out": str(args.out), "to": args.to, "pairs": counts}, indent=2))
    return 0


def _score(args: argparse.Namespace, predictions: str):
    from pln.config import IOU_THRESHOLDS, NMS_THRESHOLDS
    from pln.eval.score import score_files

    nms = args.nms if args.nms is not None else NMS_THRESHOLDS[args.dataset]
    ious = args.iou or list(IOU_THRESHOLDS[args.dataset])
    return score_files(predictions, args.annotations, args.protocol, nms, ranks=(1, 5), ious=ious)


def cmd_score(args: argparse.Namespace) -> int:
    from pln.utils import atomic_write, atomic_write_json

    scored = _score(args, args.predictions)
    result = {"protocol": scored.protocol, "metrics": scored.summary, **scored.info}
    if args.out:
        out = Path(args.out)
        atomic_write_json(out / "score.json", result)
        atomic_write(out / "per_query.csv", lambda tmp: scored.per_query.to_csv(tmp, index=False))
    print(json.dumps({"protocol": scored.protocol, "queries": scored.info["queries"],
                      "metrics": scored.summary}, indent=2))
    return 0


def cmd_example_jsonl(args: argparse.Namespace) -> int:
    from pln.data.jsonl_example import write_example

    counts = write_example(args.out, scale=args.scale, seed=args.seed)
    print(json.dumps({"out": str(args.out), "queries": counts}, indent=2))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pln.config import IOU_THRESHOLDS, NMS_THRESHOLDS
    from pln.errors import ConfigError
    from pln.eval.compare import compare_files
    from pln.utils import atomic_write

    if args.against:
        a_files, b_files = args.predictions, args.against
    elif len(args.predictions) == 2:
        a_files, b_files = args.predictions[:1], args.predictions[1:]
    else:
        raise ConfigError("pln compare: give A.jsonl B.jsonl, or A's files then --against B's files "
                          "(one prediction file per seed)")
    frame = compare_files(a_files, b_files, args.annotations, args.protocol,
                          args.nms if args.nms is not None else NMS_THRESHOLDS[args.dataset],
                          args.iou or list(IOU_THRESHOLDS[args.dataset]), args.metric, n_boot=args.n_boot,
                          seed=args.seed, min_seeds=args.min_seeds)
    if args.out:
        atomic_write(args.out, lambda tmp: frame.to_csv(tmp, index=False))
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def cmd_pack_runs(args: argparse.Namespace) -> int:
    from pln.engine.run_archive import pack_runs
    from pln.errors import ConfigError

    outcomes = pack_runs(args.runs, args.out, checkpoints=args.checkpoints)
    if not outcomes:
        raise ConfigError(f"{args.runs}: holds no run folder (a folder with config.yaml); give a runs root "
                          "such as runs/demo")
    print("\n".join(o.line() for o in outcomes))
    return 0


def cmd_unpack_runs(args: argparse.Namespace) -> int:
    from pln.engine.run_archive import SUFFIX, unpack_runs
    from pln.errors import DataError

    outcomes = unpack_runs(args.archives, args.out)
    if not outcomes:
        raise DataError(f"{args.archives}: holds no run archive (*{SUFFIX}); give the folder `pln pack-runs` wrote")
    print("\n".join(o.line() for o in outcomes))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pln.bench.run import main as bench_main

    return bench_main(args)


def add_strategy_options(p: argparse.ArgumentParser) -> None:
    """``--strategy`` and ``--stage``; unset, they come from the run's eval.strategy/eval.stage."""
    p.add_argument("--strategy", choices=["1", "2"],
                   help="1: rank one stage's map; 2: average aligned stages (default: the run's eval.strategy)")
    p.add_argument("--stage", type=int, help="strategy 1: stage t (1-based; default: the run's eval.stage)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pln", description="PLN-Bench: Progressive Localization Networks, reproduced.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an error (also {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_folder_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--wait", action="store_true",
                       help="when another process is writing the run folder, wait for it instead of stopping")
        p.add_argument("--replace-stale", action="store_true",
                       help="when the run folder holds a run of another configuration, empty it and start "
                            "afresh instead of stopping (the workflow's rules pass it: their config changed)")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="experiment YAML (see config/ and the README's model section)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set train.seed=1 (repeatable)")

    p = sub.add_parser("train", help="train one experiment into a run folder (resumable)")
    with_config(p)
    p.add_argument("--out", required=True, help="run folder")
    add_folder_options(p)
    p.add_argument("--extend", action="store_true",
                   help="when the run folder holds a run of this configuration with a shorter "
                        "train.max_epochs or train.stop_patience, continue it from its last epoch and "
                        "test it again instead of stopping")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="recompute a run's metrics from its checkpoint")
    p.add_argument("run", help="run folder written by `pln train`")
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    add_strategy_options(p)
    p.add_argument("--nms", type=float, help="NMS threshold (default: the dataset's)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: the run's)")
    p.add_argument("--out", help="also write the result as JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top-5 moments of one video for a sentence")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--features", required=True, help="HDF5 feature file (real or synthetic), or a folder of <vid>.npz / <vid>.npy")
    p.add_argument("--video", required=True, help="video id in the feature file")
    p.add_argument("--query", required=True, help="the sentence")
    p.add_argument("--duration", type=float, help="video length in seconds (default: from the annotations)")
    p.add_argument("--device", default="cpu")
    add_strategy_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("baseline-prior", help="the prior-only baseline into a run folder")
    with_config(p)
    p.add_argument("--out", required=True)
    add_folder_options(p)
    p.set_defaults(func=cmd_prior)

    p = sub.add_parser("stats", help="Table 1 and the data of Fig. 5 for a dataset")
    with_config(p)
    p.add_argument("--out", help="folder for table1.csv and moment_lengths.csv")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("generate", help="generate the synthetic dataset of a config")
    with_config(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("convert", help="2D-TAN annotation files to moment-DETR JSONL, or back")
    p.add_argument("source", help="folder of the 2D-TAN files (--to jsonl) or of <split>.jsonl (--to 2dtan)")
    p.add_argument("out", help="output folder")
    p.add_argument("--family", required=True, choices=["tacos", "activitynet", "charades"])
    p.add_argument("--to", default="jsonl", choices=["jsonl", "2dtan"], help="target format (default jsonl)")
    p.set_defaults(func=cmd_convert)

    def with_scoring(p: argparse.ArgumentParser) -> None:
        p.add_argument("--annotations", required=True, help="ground truth: a JSONL annotation file")
        p.add_argument("--protocol", default="2dtan", choices=["2dtan", "moment-detr"],
                       help="2dtan: our evaluation (NMS, Rank@{1,5}, IoU > m); moment-detr: QVHighlights "
                            "(R1 and mAP, IoU >= m, no NMS)")
        p.add_argument("--dataset", default="jsonl", choices=["tacos", "activitynet", "charades", "jsonl"],
                       help="2dtan: whose NMS threshold and IoU thresholds m (default jsonl: 0.5; 0.3, 0.5, 0.7)")
        p.add_argument("--nms", type=float, help="2dtan: NMS threshold (default: the dataset's)")
        p.add_argument("--iou", type=float, nargs="+", help="2dtan: IoU thresholds m (default: the dataset's)")

    p = sub.add_parser("score", help="score a prediction JSONL file (any method) against JSONL annotations")
    p.add_argument("predictions", help="JSONL: {qid, pred_relevant_windows: [[start, end, score], ...]} per line")
    with_scoring(p)
    p.add_argument("--out", help="folder for score.json and per_query.csv")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("compare", help="paired effect of two methods from their prediction files (seeds aware)")
    p.add_argument("predictions", nargs="+",
                   help="A.jsonl B.jsonl; or method A's files (one per seed) when --against is given")
    p.add_argument("--against", nargs="+", help="method B's prediction files (one per seed)")
    with_scoring(p)
    p.add_argument("--metric", nargs="+", help="metrics to compare (default: every metric of the protocol)")
    p.add_argument("--n-boot", type=int, default=2000, help="draws of the interval method (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the interval method")
    p.add_argument("--min-seeds", type=int, default=3,
                   help="seeds per method below which the effect is not testable (default 3, as the tables)")
    p.add_argument("--out", help="also write the comparison as CSV here")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("example-jsonl", help="write a small generated dataset in the JSONL layout")
    p.add_argument("out", help="folder: annotations/{train,test}.jsonl and features/<vid>.npz")
    p.add_argument("--scale", type=float, default=0.1, help="size (synthetic Charades-STA scale, default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_example_jsonl)

    p = sub.add_parser("pack-runs", help="every run folder under a root into one .tar.xz each (to carry elsewhere)")
    p.add_argument("runs", help="runs root, e.g. runs/demo: its <model>/seed<k> folders are packed")
    p.add_argument("--out", required=True, help="archive folder: <model>/seed<k>.tar.xz mirror the run folders")
    p.add_argument("--checkpoints", action="store_true",
                   help="keep the checkpoints of finished runs too (for `pln evaluate` or `--extend` there; "
                        "unfinished runs always keep theirs, to resume)")
    p.set_defaults(func=cmd_pack_runs)

    p = sub.add_parser("unpack-runs", help="restore the archives of `pln pack-runs` into run folders")
    p.add_argument("archives", help="the archive folder `pln pack-runs` wrote")
    p.add_argument("--out", required=True, help="runs root to restore into (a folder with results is left)")
    p.set_defaults(func=cmd_unpack_runs)

    p = sub.add_parser("bench", help="throughput, memory, parameters and FLOPs of the paper's configurations")
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
