"""`pln score`: both protocols on hand-made cases (values worked out by hand in the comments)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pln.cli import main
from pln.errors import DataError
from pln.eval.score import average_precision, score_2dtan, score_files, score_moment_detr


def preds(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def test_2dtan_iou_exactly_at_m_is_a_miss_and_moment_detr_a_hit():
    # [0, 5] against [0, 10]: IoU exactly 0.5
    p, w = [preds([0, 5, 0.9])], [[(0.0, 10.0)]]
    ours = score_2dtan(p, w, nms_threshold=0.5, ranks=(1,), ious=(0.3, 0.5))
    assert bool(ours["R1@0.3"][0]) and not bool(ours["R1@0.5"][0]) and ours["IoU"][0] == 0.5
    theirs = score_moment_detr(p, w)
    assert bool(theirs["R1@0.5"][0]) and not bool(theirs["R1@0.55"][0])


def test_2dtan_nms_runs_over_the_given_windows():
    # [0, 9] overlaps [0, 10] with IoU 0.9 > 0.5: suppressed, so [20, 30] becomes rank 2.
    p = [preds([0, 10, 0.9], [0, 9, 0.8], [20, 30, 0.7])]
    out = score_2dtan(p, [[(20.0, 30.0)]], nms_threshold=0.5, ranks=(1, 2), ious=(0.5,))
    assert not bool(out["R1@0.5"][0]) and bool(out["R2@0.5"][0])
    # without suppression (threshold 1) [20, 30] is rank 3: no hit within rank 2
    out = score_2dtan(p, [[(20.0, 30.0)]], nms_threshold=1.0, ranks=(1, 2), ious=(0.5,))
    assert not bool(out["R2@0.5"][0])


def test_2dtan_several_windows_and_fewer_predictions_than_ranks():
    w = [[(0.0, 10.0), (20.0, 30.0)], [(0.0, 10.0)], [(0.0, 10.0)]]
    p = [preds([20, 30, 0.9]), preds([40, 50, 0.9]), preds()]
    out = score_2dtan(p, w, nms_threshold=0.5, ranks=(1, 5), ious=(0.5,))
    # query 0 hits its second window; query 1 has one (wrong) prediction; query 2 none at all
    assert out["R1@0.5"].tolist() == [True, False, False]
    assert out["R5@0.5"].tolist() == [True, False, False]
    assert out["IoU"].tolist() == [1.0, 0.0, 0.0]


def test_moment_detr_r1_uses_the_best_matching_window_of_the_top1():
    # top-1 [18, 30]: IoU 0 with [0, 10], 10/12 with [20, 30]
    out = score_moment_detr([preds([18, 30, 0.1], [0, 10, 0.9])], [[(0.0, 10.0), (20.0, 30.0)]])
    assert out["IoU"][0] == pytest.approx(10 / 12)
    assert bool(out["R1@0.8"][0]) and not bool(out["R1@0.85"][0])


def test_moment_detr_ap_ties_keep_the_listed_order():
    gt = np.array([[0.0, 10.0]])
    # equal scores: TP then FP -> precision [1, .5], recall [1, 1] -> AP 1
    assert average_precision(preds([0, 10, 0.5], [50, 60, 0.5]), gt, [0.5]).tolist() == [1.0]
    # FP then TP -> interpolated precision 0.5 over the one recall step -> AP 0.5
    assert average_precision(preds([50, 60, 0.5], [0, 10, 0.5]), gt, [0.5]).tolist() == [0.5]
    # scores, not the listed order, rank for AP
    assert average_precision(preds([50, 60, 0.1], [0, 10, 0.9]), gt, [0.5]).tolist() == [1.0]


def test_moment_detr_ap_greedy_matching_of_several_windows():
    # TP (takes [0,10]), FP (its best window is taken, the next has IoU 0), TP ([10,20]):
    # precision [1, 1/2, 2/3], recall [1/2, 1/2, 1] -> 1/2 * 1 + 1/2 * 2/3 = 5/6
    gt = np.array([[0.0, 10.0], [10.0, 20.0]])
    ap = average_precision(preds([0, 10, 0.9], [0, 10, 0.8], [10, 20, 0.7]), gt, [0.5, 0.95])
    assert ap == pytest.approx([5 / 6, 5 / 6])
    # IoU exactly at the threshold counts: [0, 5] against [0, 10] is 0.5
    assert average_precision(preds([0, 5, 1.0]), gt[:1], [0.5, 0.55]).tolist() == [1.0, 0.0]


def test_moment_detr_reads_only_the_first_ten_windows():
    wrong = [[50 + i, 51 + i, 1.0 - i / 100] for i in range(10)]
    out = score_moment_detr([preds(*wrong, [0, 10, 0.0])], [[(0.0, 10.0)]])
    assert out["AP"][0] == 0.0 and not bool(out["R1@0.5"][0])
    out = score_moment_detr([preds(*wrong[:9], [0, 10, 0.0])], [[(0.0, 10.0)]])
    assert out["AP"][0] == pytest.approx(0.1)  # the 10th of 10: precision 1/10 at recall 1


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def files(tmp_path):
    gt = write_jsonl(tmp_path / "test.jsonl", [
        {"qid": 1, "query": "a", "vid": "v", "duration": 40.0, "relevant_windows": [[0, 10], [20, 30]]},
        {"qid": 2, "query": "b", "vid": "v", "duration": 40.0, "relevant_windows": [[0, 5]]},
        {"qid": 3, "query": "c", "vid": "v", "duration": 40.0, "relevant_windows": [[7, 7]]},  # dropped
    ])
    pred = write_jsonl(tmp_path / "pred.jsonl", [
        {"qid": 2, "pred_relevant_windows": [[0, 5, 0.9]]},
        {"qid": 1, "pred_relevant_windows": [[20, 30, 0.9], [0, 10, 0.8]]},
        {"qid": 3, "pred_relevant_windows": [[7, 8, 0.9]]},
    ])
    return tmp_path, gt, pred


def test_score_files_both_protocols(files):
    _, gt, pred = files
    ours = score_files(pred, gt, "2dtan", nms_threshold=0.5, ious=(0.5, 0.7))
    assert ours.summary["R1@0.5"] == 100.0 and ours.summary["mIoU"] == 100.0
    assert ours.per_query["qid"].tolist() == [1, 2]
    assert ours.info["predictions_ignored_for_dropped_queries"] == 1
    theirs = score_files(pred, gt, "moment-detr")
    # query 1: two windows, both found -> AP 1; query 2: AP 1
    assert theirs.summary["mAP"] == 100.0 and theirs.summary["mAP@0.75"] == 100.0
    assert theirs.summary["R1@0.95"] == 100.0


def test_missing_and_unknown_qids_are_named(files):
    tmp, gt, _ = files
    only_one = write_jsonl(tmp / "one.jsonl", [{"qid": 1, "pred_relevant_windows": [[0, 1, 1]]}])
    with pytest.raises(DataError, match="no prediction for qid 2"):
        score_files(only_one, gt)
    extra = write_jsonl(tmp / "extra.jsonl", [{"qid": q, "pred_relevant_windows": []} for q in (1, 2, "x9")])
    with pytest.raises(DataError, match="qid 'x9' is not in"):
        score_files(extra, gt)
    twice = write_jsonl(tmp / "twice.jsonl", [{"qid": 1, "pred_relevant_windows": []}] * 2)
    with pytest.raises(DataError, match="qid 1 is predicted twice"):
        score_files(twice, gt)


def test_cli_writes_per_query_outcomes(files, capsys):
    tmp, gt, pred = files
    assert main(["score", str(pred), "--annotations", str(gt), "--protocol", "moment-detr",
                 "--out", str(tmp / "out")]) == 0
    result = json.loads((tmp / "out" / "score.json").read_text())
    assert result["protocol"] == "moment-detr" and result["metrics"]["mAP"] == 100.0
    header = (tmp / "out" / "per_query.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["qid", "R1@0.5", "R1@0.55"] and "AP" in header
    bad = write_jsonl(tmp / "bad.jsonl", [{"qid": 1}])
    assert main(["score", str(bad), "--annotations", str(gt)]) == 2
    assert "pred_relevant_windows" in capsys.readouterr().err


def seed_files(tmp, name, tops):
    """One prediction file per seed: ``tops[s][q]`` the top-1 window of query q."""
    paths = []
    for s, top in enumerate(tops):
        rows = [{"qid": q, "pred_relevant_windows": [[*w, 1.0]]} for q, w in enumerate(top)]
        paths.append(write_jsonl(tmp / f"{name}{s}.jsonl", rows))
    return paths


def test_compare_is_the_paired_effect_of_the_per_query_outcomes(tmp_path, capsys):
    from pln.eval.compare import compare_files
    from pln.stats import paired_effect

    gt = write_jsonl(tmp_path / "gt.jsonl", [
        {"qid": q, "query": "x", "vid": "v", "duration": 100.0, "relevant_windows": [[10 * q, 10 * q + 10]]}
        for q in range(4)])
    hit = lambda q: [10 * q, 10 * q + 10]  # noqa: E731
    miss = lambda q: [90, 100]  # noqa: E731
    a = seed_files(tmp_path, "a", [[hit(0), hit(1), hit(2), miss(3)], [hit(0), hit(1), miss(2), miss(3)],
                                   [hit(0), hit(1), hit(2), hit(3)]])
    b = seed_files(tmp_path, "b", [[hit(0), miss(1), miss(2), miss(3)], [miss(0), miss(1), miss(2), miss(3)],
                                   [hit(0), hit(1), miss(2), miss(3)]])
    frame = compare_files(a, b, gt, "2dtan", metrics=["R1@0.5"], n_boot=500, seed=1)
    row = frame.iloc[0]
    ta = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]) * 100.0
    tb = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]) * 100.0
    want = paired_effect(ta, tb, n_boot=500, seed=1, min_seeds=3)
    assert row["effect"] == pytest.approx(75.0 - 25.0) == pytest.approx(want.estimate)
    assert (row["low"], row["high"]) == pytest.approx((want.low, want.high)) and bool(row["testable"])
    # the two-file shorthand: one seed each, an estimate but no interval, not testable
    assert main(["compare", str(a[0]), str(b[0]), "--annotations", str(gt), "--protocol", "moment-detr",
                 "--metric", "R1@0.5", "mAP", "--out", str(tmp_path / "cmp.csv")]) == 0
    out = (tmp_path / "cmp.csv").read_text().splitlines()
    assert out[0].startswith("metric,mean_a,mean_b,effect") and out[1].startswith("R1@0.5,75.0,25.0,50.0")
    assert main(["compare", str(a[0]), "--annotations", str(gt)]) == 2
    assert main(["compare", *map(str, a), "--against", *map(str, b), "--annotations", str(gt),
                 "--metric", "nope"]) == 2
    assert "not a metric of the 2dtan protocol" in capsys.readouterr().err
