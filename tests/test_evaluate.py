"""Metrics against hand-checked cases, bootstrap intervals, plots that are really drawn, and run evaluation that
says exactly what it scored."""

from pathlib import Path

import numpy as np
import pytest

from conftest import link_tree
from signrec.cli import main
from signrec.evaluate import (
    bootstrap_ci,
    compute_metrics,
    confusion_figure,
    curves_figure,
    evaluate_run,
    plot_confusion,
    plot_curves,
    top_confusions,
    topk_hits,
)
from signrec.io import read_csv_rows
from signrec.presets import reference
from signrec.splits import Split
from signrec.training.runner import train


def test_metrics_on_a_hand_checked_case():
    labels = ["a", "b", "c"]
    y = np.array([0, 0, 0, 1, 2])
    probs = np.array([
        [0.7, 0.2, 0.1],  # a, right
        [0.6, 0.3, 0.1],  # a, right
        [0.1, 0.5, 0.4],  # a -> b; a is third: wrong even in top-2
        [0.2, 0.7, 0.1],  # b, right
        [0.5, 0.1, 0.4],  # c -> a; c second
    ])  # fmt: skip
    m = compute_metrics(probs, y, labels)
    assert m.top1 == pytest.approx(3 / 5)
    assert m.k == 3 and m.top5 == 1.0  # fewer than 5 glosses: top-3 covers everything
    assert topk_hits(probs, y, 2).tolist() == [True, True, False, True, True]
    assert m.top1_per_gloss == pytest.approx((2 / 3 + 1 + 0) / 3)  # mean of per-gloss accuracy
    per = {g["gloss"]: g for g in m.per_gloss}
    assert per["a"]["precision"] == pytest.approx(2 / 3) and per["a"]["recall"] == pytest.approx(2 / 3)
    assert per["b"]["precision"] == pytest.approx(1 / 2) and per["b"]["recall"] == 1.0
    assert per["c"]["f1"] == 0.0 and per["c"]["support"] == 1
    assert m.confusion == [[2, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_a_gloss_without_clips_or_predictions_has_no_made_up_figures(tmp_path):
    """With hundreds of glosses many are not among the clips scored: their recall is not 0 but undefined, and so
    is the precision of a gloss never predicted. The report says so ("-"), and past LABELLED_UP_TO glosses lists
    only the glosses scored or predicted, counting the others."""
    from signrec.evaluate import LABELLED_UP_TO, Evaluation, write_report

    labels = ["a", "b", "c", "d"]
    y = np.array([0, 0, 1])
    probs = np.array([[0.8, 0.1, 0.05, 0.05], [0.1, 0.1, 0.7, 0.1], [0.1, 0.8, 0.05, 0.05]])  # a, a -> c, b
    per = {g["gloss"]: g for g in compute_metrics(probs, y, labels).per_gloss}
    assert per["a"] == {"gloss": "a", "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2,
                        "predicted": 1}  # fmt: skip
    assert per["c"]["precision"] == 0.0 and per["c"]["recall"] is None and per["c"]["f1"] == 0.0  # predicted, no clip
    assert per["d"]["precision"] is None and per["d"]["recall"] is None and per["d"]["f1"] is None
    assert per["d"]["support"] == 0 and per["d"]["predicted"] == 0

    many = [f"g{i:03d}" for i in range(LABELLED_UP_TO + 10)]
    wide = np.full((3, len(many)), 0.001)
    wide[np.arange(3), [0, 2, 1]] = 0.9
    ev = Evaluation(str(tmp_path), "torch", "m", "test", compute_metrics(wide, y, many), {})
    small = Evaluation(str(tmp_path), "torch", "m", "test", compute_metrics(probs, y, labels), {})
    write_report(tmp_path / "r.md", [small])
    write_report(tmp_path / "wide.md", [ev])
    rows = [r for r in (tmp_path / "r.md").read_text().splitlines() if r.startswith("| d |")]
    assert rows == ["| d | - | - | - | 0 | 0 |"]
    text = (tmp_path / "wide.md").read_text()
    assert "| g002 | 0.00 | - | 0.00 | 0 | 1 |" in text and "| g003 |" not in text
    assert f"{len(many) - 3} other glosses of the model neither among these clips nor predicted" in text


def test_bootstrap_interval_contains_the_estimate():
    hits = np.array([1] * 17 + [0] * 8, dtype=float)
    lo, hi = bootstrap_ci(hits)
    assert lo < hits.mean() < hi
    assert 0.45 < lo < 0.6 and 0.8 < hi < 0.95  # about ±0.18 for n=25 at 68%
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)


def _image(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


@pytest.mark.parametrize("n", [4, 100])
def test_confusion_png_is_drawn_and_scales(tmp_path, n):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 5, (n, n)) + np.eye(n, dtype=int) * 10
    labels = [f"gloss{i}" for i in range(n)]
    path = tmp_path / "cm.png"
    plot_confusion(cm, labels, path, normalise=True)
    img = _image(path)
    assert img.std() > 0.05  # not blank
    h, w = img.shape[:2]
    assert h >= 20 * n and w >= 20 * n if n > 4 else (400 <= h <= 900 and 500 <= w <= 1000)


def test_confusion_has_a_colour_bar_and_long_labels_stay_inside():
    labels = ["thank you very much", "good afternoon", "computer", "what"]
    fig = confusion_figure(np.eye(4, dtype=int) * 3 + 1, labels, normalise=True)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "share of the true gloss's clips"  # the colour bar
    fig.canvas.draw()
    box = fig.bbox
    ax = fig.axes[0]
    for label in ax.get_xticklabels() + ax.get_yticklabels():
        extent = label.get_window_extent()
        assert extent.x0 >= box.x0 - 1 and extent.y0 >= box.y0 - 1 and extent.x1 <= box.x1 + 1, label.get_text()


def test_curves_mark_the_best_epoch_with_whole_epoch_ticks(tmp_path):
    hist = tmp_path / "history.csv"
    hist.write_text("epoch,train_loss,train_acc,val_loss,val_acc,seconds\n1,1.2,0.3,1.3,0.2,1\n2,0.8,0.6,1.0,0.5,1\n"
                    "3,0.6,0.7,1.1,0.55,1\n")  # fmt: skip
    fig = curves_figure(hist)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
        marks = [line for line in ax.get_lines() if "best epoch" in line.get_label()]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [2, 2]  # the lowest validation loss
    plot_curves(hist, tmp_path / "curves.png")
    img = _image(tmp_path / "curves.png")
    assert img.shape[:2] == (400, 1100) and img.std() > 0.05


def test_an_ensemble_has_the_training_curves_of_its_members(tmp_path):
    """The best model of `run` (validated models and refits in members/) had no curves in its report: only a run's
    own history.csv was drawn. Each member is now drawn in its own colour, the validated ones with their best epoch;
    only the members the model is made of (its card's), and only folders named as members."""
    from signrec.training.runner import histories

    header = "epoch,train_loss,train_acc,val_loss,val_acc,seconds\n"
    for name, rows in (("seed-0", "1,1.2,0.3,1.3,0.2,1\n2,0.8,0.6,1.0,0.5,1\n3,0.6,0.7,1.1,0.55,1\n"),
                       ("seed-1", "1,1.1,0.3,1.2,0.3,1\n2,0.9,0.5,0.9,0.6,1\n"),
                       ("refit-seed-2", "1,1.0,0.4,,,1\n2,0.7,0.6,,,1\n3,0.5,0.8,,,1\n"),
                       ("seed-10", ""),  # interrupted before its first epoch: nothing to draw
                       ("seed-0-old", "1,1.0,0.4,1.0,0.4,1\n"), (".seed-3", "1,1.0,0.4,1.0,0.4,1\n")):  # fmt: skip
        (tmp_path / "members" / name).mkdir(parents=True)
        (tmp_path / "members" / name / "history.csv").write_text(header + rows)
    found = histories(tmp_path)
    assert [name for name, _ in found] == ["seed-0", "seed-1", "refit-seed-2"]  # validated first, in seed order
    assert [name for name, _ in histories(tmp_path, ["seed-0", "seed-1"])] == ["seed-0", "seed-1"]  # validated.pt's
    fig = curves_figure(found)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["seed-0", "seed-1", "refit-seed-2"]
        assert len({line.get_color() for line in ax.get_lines()}) == 3  # a colour a member
        best = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert sorted(line.get_xdata()[0] for line in best) == [2, 2]  # the validated members' lowest val loss
    assert "dotted: the validated models' best epochs" in fig._suptitle.get_text()
    (tmp_path / "history.csv").write_text(header + "1,1.2,0.3,1.3,0.2,1\n")
    assert histories(tmp_path) == [("", tmp_path / "history.csv")]  # a run of its own: its own history


def test_top_confusions_lists_the_biggest_off_diagonal_cells():
    cm = [[5, 3, 0], [1, 4, 0], [0, 6, 2]]
    got = top_confusions(cm, ["a", "b", "c"], 2)
    assert [(c["true"], c["predicted"], c["count"]) for c in got] == [("c", "b", 6), ("a", "b", 3)]
    assert got[0]["share"] == pytest.approx(6 / 8)


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """A quick run on one webcam signer (hello, iloveyou, thanks)."""
    out = tmp_path_factory.mktemp("run")
    train(data_dir / "keypoints" / "webcam" / "akashsharma095", out, reference().with_config(max_epochs=2, progress=False))
    return out


def test_evaluate_a_checkpoint_file_puts_its_report_beside_it_named_for_data_and_split(run, data_dir, capsys):
    """Issue 11.4: `evaluate run/model.pt --data D --split all` used to fail with 'Not a directory'."""
    other = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    assert main(["evaluate", str(run / "model.pt"), "--data", str(other), "--split", "all"]) == 0
    out = run / "eval-ilkerdemir-s-all"
    assert (out / "report.md").exists() and (out / "confusion.png").exists() and (out / "recall.png").exists()
    scored = read_csv_rows(out / "predictions.csv")
    assert len(scored) == 120 and all(r["path"].split("/")[0] in ("hello", "iloveyou", "thanks") for r in scored)
    report = (out / "report.md").read_text()
    assert f"scored all 120 clips of {other}" in report and "warning" not in report


def test_evaluate_warns_when_it_scores_training_clips(run, data_dir, capsys):
    """Issue 11.4: `--split all` on the training folder scored training clips and called them test clips."""
    data = data_dir / "keypoints" / "webcam" / "akashsharma095"
    ev = evaluate_run(run, data, "all")
    n_train = len(Split.load(run / "split.json").train)
    assert ev.in_training == n_train > 0
    assert any(f"{n_train} of the 90 scored clips were in the model's training split" in w for w in ev.warnings)
    assert "bootstrap over test clips" not in (run / "eval-akashsharma095-all" / "report.md").read_text()
    val = evaluate_run(run, data, "val")
    assert val.in_training == 0 and any("validation clips chose the model" in w for w in val.warnings)
    assert val.scored.startswith("the 14 validation clips of") and val.scored.endswith("(the run's val split)")


def test_evaluate_scores_the_known_glosses_and_lists_the_others(run, data_dir, tmp_path):
    """Issue 11.4: a folder whose glosses only partly overlap the model's used to be refused."""
    webcam = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    wlasl = data_dir / "keypoints" / "wlasl-b"
    files = {f"hello/{i}.npy": webcam / "hello" / f"{i:03d}.npy" for i in range(4)}
    files |= {f"bed/{i}.npy": p for i, p in enumerate(sorted((wlasl / "bed").glob("*.npy"))[:3])}
    files |= {f"book/{i}.npy": p for i, p in enumerate(sorted((wlasl / "book").glob("*.npy"))[:2])}
    mixed = link_tree(tmp_path / "mixed", files)
    ev = evaluate_run(run, mixed, "all")
    assert ev.metrics.n == 4 and ev.skipped == 5 and ev.unknown == {"bed": 3, "book": 2}
    assert any("skipped 5 clips of 2 glosses the model does not know: bed (3), book (2)" in w for w in ev.warnings)
    with pytest.raises(ValueError, match="none of its glosses"):
        evaluate_run(run, link_tree(tmp_path / "none", {"bed/0.npy": files["bed/0.npy"], "book/0.npy": files["book/0.npy"]}),
                     "all")  # fmt: skip


def test_evaluate_reads_a_folder_with_an_index_as_run_does(run, data_dir, tmp_path, capsys):
    """Issue 14: `evaluate RUN --data FOLDER --split all` on a folder in the format of the WLASL300 hands set (an
    index.csv naming each clip's file, gloss, signer and split, no manifest) stopped with "not a signrec keypoint
    store"; `run --keypoints` imports such a folder itself, and so does evaluate now (beside its report)."""
    other = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    files = {f"clips/{p.parent.name}-{p.stem}.npy": p for p in sorted(other.glob("*/*.npy"))[::10]}
    folder = link_tree(tmp_path / "other clips", files)
    (folder / "index.csv").write_text("path,gloss,signer,split\n" + "".join(
        f"{rel},{'thank you' if src.parent.name == 'thanks' else src.parent.name},ilker,test\n"
        for rel, src in files.items()))  # fmt: skip
    assert main(["evaluate", str(run), "--data", str(folder), "--split", "all"]) == 0
    said = capsys.readouterr().out
    out = run / "eval-other clips-all"
    scratch = Path(said.split("importing it into ")[1].split()[0])
    assert "report: " in said and not scratch.exists() and not (out / "keypoints").exists()  # imported for it alone
    scored = read_csv_rows(out / "predictions.csv")
    n_thanks = sum(src.parent.name == "thanks" for src in files.values())
    assert len(scored) == len(files) - n_thanks > 0  # "thank you" is not a gloss the model knows
    direct = evaluate_run(run, other, "all")  # the same clips, read where they are
    by_path = {r["path"]: r for r in read_csv_rows(run / "eval-ilkerdemir-s-all" / "predictions.csv")}
    for r in scored:
        gloss, stem = r["path"].split("/")[1].rsplit(".", 1)[0].split("-")
        assert r["predicted"] == by_path[f"{gloss}/{stem}.npy"]["predicted"]
    report = (out / "report.md").read_text()
    assert f"scored all {len(scored)} clips of {folder} (imported for this evaluation)" in report
    assert direct.metrics.n == 120 and f"skipped {n_thanks} clips of 1 gloss the model" in report


def test_evaluate_warns_about_training_clips_in_another_folder(run, data_dir, tmp_path):
    """A copy of the clips the model trained on, given as --data, scored 100% without a word: training clips are
    known by their keypoints, wherever they are, not by the folder they are in."""
    data = data_dir / "keypoints" / "webcam" / "akashsharma095"
    trained = Split.load(run / "split.json")
    files = {rel: data / rel for rel in trained.train[:5] + trained.test[:3]}
    files |= {f"{rel.split('/')[0]}/renamed-{i}.npy": data / rel for i, rel in enumerate(trained.train[5:8])}
    files |= {f"{rel.split('/')[0]}/checked-{i}.npy": data / rel for i, rel in enumerate(trained.val[:2])}
    ev = evaluate_run(run, link_tree(tmp_path / "copy", files), "all")
    assert ev.metrics.n == 13 and ev.in_training == 8
    assert any("8 of the 13 scored clips were in the model's training split" in w for w in ev.warnings)
    assert any("2 of the 13 scored clips were the validation clips that chose the model" in w for w in ev.warnings)
    fresh = evaluate_run(run, link_tree(tmp_path / "new", {rel: data / rel for rel in trained.test[:3]}), "all")
    assert fresh.in_training == 0 and not fresh.warnings


def test_two_checkpoints_of_one_run_get_their_own_reports(run, data_dir, tmp_path):
    """`evaluate runs/best` and `evaluate runs/best/validated.pt` on the same data wrote the same folder, the second
    over the first without a word, under the same title: another checkpoint than the run's model is named."""
    import shutil

    other = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    shutil.copy(run / "model.pt", run / "second.pt")
    first, second = evaluate_run(run, other, "all"), evaluate_run(run / "second.pt", other, "all")
    assert first.files["report"] == str(run / "eval-ilkerdemir-s-all" / "report.md")
    assert second.files["report"] == str(run / "eval-second-ilkerdemir-s-all" / "report.md")
    assert (run / "eval-second-ilkerdemir-s-all" / "report.md").read_text().startswith(
        f"# Evaluation of {run.name}/second.pt on ilkerdemir-s (all)")


def test_large_vocabulary_pictures_show_what_was_scored(tmp_path):
    """A 300-gloss model scored on a few clips drew a 300 x 300 matrix, nearly empty, and its "hardest glosses" bars
    included glosses always right (red) while those never right had no visible bar."""
    from signrec.evaluate import LABELLED_UP_TO, recall_figure, write_evaluation

    labels = [f"g{i:03d}" for i in range(3 * LABELLED_UP_TO)]
    y = np.array([0, 0, 1, 2, 2, 3])
    probs = np.full((len(y), len(labels)), 0.001)
    probs[np.arange(len(y)), [0, 5, 1, 2, 3, 7]] = 0.9  # g000 1 of 2 right, g001 right, g002 1 of 2, g003 never
    m = compute_metrics(probs, y, labels)
    files = write_evaluation(tmp_path, m, labels, [], "m", [str(i) for i in range(len(y))], probs, y)
    h, w = _image(files["confusion_png"]).shape[:2]
    assert h < 900 and w < 1000  # 6 glosses among the clips or predicted (g000-g003, g005, g007), not 120
    assert len(read_csv_rows(files["confusion_csv"])) == len(labels)  # the CSV keeps every gloss
    fig = recall_figure(m.per_gloss)
    hardest = fig.axes[1]
    names = [t.get_text() for t in hardest.get_yticklabels()]
    assert names == ["g003 (1)", "g000 (2)", "g002 (2)"]  # below 1 only, the worst first
    assert [t.get_text() for t in hardest.texts] == ["0/1", "1/2", "1/2"]  # each bar says its clips right


def test_the_report_says_when_nothing_was_confused_and_counts_in_words(run, data_dir, tmp_path):
    from signrec.evaluate import Evaluation, write_report

    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    ev = Evaluation(str(tmp_path), "torch", "m", "test", compute_metrics(probs, np.array([0, 1]), ["a", "b"]), {})
    write_report(tmp_path / "r.md", [ev])
    assert "Most confused pairs: none (every clip's answer was right)." in (tmp_path / "r.md").read_text()
    webcam = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    one = link_tree(tmp_path / "one", {"hello/0.npy": webcam / "hello" / "000.npy",
                                       "bed/0.npy": next((data_dir / "keypoints" / "wlasl-b" / "bed").glob("*.npy"))})  # fmt: skip
    assert "skipped 1 clip of 1 gloss the model does not know: bed (1)" in evaluate_run(run, one, "all").warnings[0]


def test_the_report_gives_each_signers_figures_the_lowest_first(run, data_dir, tmp_path):
    """New signers are the hard case, and a report of new people gave one figure for all of them: each person's
    top-1 and top-k are now in the report (those with at least SIGNER_MIN_CLIPS clips) and per_signer.csv (all)."""
    from signrec.evaluate import SIGNER_MIN_CLIPS, per_signer
    from signrec.store import import_keypoints

    webcam = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    files = {f"{g}/{i}.npy": webcam / g / f"{i:03d}.npy" for g in ("hello", "thanks") for i in range(5)}
    src = link_tree(tmp_path / "src", files)
    who = {f: "s1" if i < SIGNER_MIN_CLIPS + 1 else "s2" for i, f in enumerate(files)}  # 6 clips and 4
    (src / "index.csv").write_text("path,signer\n" + "".join(f"{f},{who[f]}\n" for f in files))
    import_keypoints(src, tmp_path / "kp", progress=False)
    ev = evaluate_run(run, tmp_path / "kp", "all", progress=False)
    right = {}
    for r in read_csv_rows(ev.files["predictions"]):
        right.setdefault(who[r["path"]], []).append(int(r["correct"]))
    rows = {r["signer"]: r for r in read_csv_rows(ev.files["per_signer"])}
    assert {s: int(r["clips"]) for s, r in rows.items()} == {s: len(v) for s, v in right.items()} == {"s1": 6, "s2": 4}
    assert {s: float(r["top1"]) for s, r in rows.items()} == pytest.approx({s: np.mean(v) for s, v in right.items()})
    report = Path(ev.files["report"]).read_text()
    assert "Per signer (2 people; those with at least 5 clips, the lowest top-1 first):" in report
    assert f"| s1 | 6 | {np.mean(right['s1']):.1%} |" in report and "| s2 |" not in report
    assert "1 other person with fewer clips (per_signer.csv)." in report
    few = evaluate_run(run, tmp_path / "kp", "all", where="signer=s2", progress=False, out=tmp_path / "few")
    assert few.signers == []  # one person: no per-signer lines
    from signrec.evaluate import _per_signer_lines

    assert _per_signer_lines([{"signer": "s2", "clips": 4, "top1": 0.5, "topk": 1.0},
                              {"signer": "s3", "clips": 2, "top1": 1.0, "topk": 1.0}], 5) == [
        "Per signer: 2 people, none with 5 clips or more (per_signer.csv).", ""]  # fmt: skip
    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4], [0.2, 0.7, 0.1]])
    got = per_signer(["a", "b", "b", ""], probs, np.array([0, 1, 1, 0]), k=2)
    assert [(r["signer"], r["clips"], r["top1"], r["topk"]) for r in got] == [
        ("b", 2, 0.0, 0.5), ("(no signer)", 1, 0.0, 1.0), ("a", 1, 1.0, 1.0)]  # the most clips first among equals


def test_evaluate_says_which_clips_of_the_store_it_could_not_score(run, data_dir, tmp_path):
    """Clips an import or extraction refused are in the store's manifest as failed: the report said "all 2 clips"
    without them."""
    from signrec.store import import_keypoints

    webcam = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    src = link_tree(tmp_path / "src", {f"hello/{i}.npy": webcam / "hello" / f"{i:03d}.npy" for i in range(2)})
    np.save(src / "hello" / "bad.npy", np.ones((10, 250), np.float32))
    import_keypoints(src, tmp_path / "kp", progress=False)
    ev = evaluate_run(run, tmp_path / "kp", "all")
    assert ev.metrics.n == 2
    assert any(w.startswith(f"1 clip of {tmp_path / 'kp'} failed when it was made (its manifest says why), not "
                            "scored: hello/bad.npy") for w in ev.warnings)  # fmt: skip


def test_an_imported_folder_is_scored_as_it_is_now_and_alone(run, data_dir, tmp_path, capsys):
    """Imported into a store kept beside the report, a second folder of the same name was added to the first and
    both were scored as the second; a folder that lost clips kept them. And a side of the run's split cannot be
    taken from another folder: refused before anything is imported."""
    webcam = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    hello = sorted((webcam / "hello").glob("*.npy"))
    for side, files in (("a", hello[:3]), ("b", hello[3:5])):
        folder = link_tree(tmp_path / side / "clips", {f"c/{f.name}": f for f in files})
        (folder / "index.csv").write_text("path,gloss\n" + "".join(f"c/{f.name},hello\n" for f in files))
    assert evaluate_run(run, tmp_path / "a" / "clips", "all").metrics.n == 3
    assert evaluate_run(run, tmp_path / "b" / "clips", "all").metrics.n == 2
    (tmp_path / "a" / "clips" / "c" / hello[0].name).unlink()
    assert evaluate_run(run, tmp_path / "a" / "clips", "all").metrics.n == 2
    capsys.readouterr()
    with pytest.raises(ValueError, match="use --split all"):
        evaluate_run(run, tmp_path / "b" / "clips", "test")
    assert "importing" not in capsys.readouterr().out


def test_a_float16_copy_of_the_training_clips_is_known_and_a_lost_training_store_is_said(run, data_dir, tmp_path):
    from signrec.store import import_keypoints

    data = data_dir / "keypoints" / "webcam" / "akashsharma095"
    trained = Split.load(run / "split.json")
    import_keypoints(link_tree(tmp_path / "src", {rel: data / rel for rel in trained.train[:4]}), tmp_path / "kp16",
                     dtype="float16", progress=False)  # fmt: skip
    ev = evaluate_run(run, tmp_path / "kp16", "all")
    assert ev.in_training == 4 and any("4 of the 4 scored clips were in the model's training split" in w
                                       for w in ev.warnings)  # fmt: skip
    moved = tmp_path / "moved"
    link_tree(tmp_path / "train", {rel: data / rel for rel in trained.train[:20] + trained.val[:6] + trained.test[:6]})
    other = tmp_path / "other"
    train(tmp_path / "train", moved, reference().with_config(max_epochs=1, progress=False))
    import shutil

    shutil.rmtree(tmp_path / "train")
    ev = evaluate_run(moved, data_dir / "keypoints" / "webcam" / "ilkerdemir-s", "all", out=other)
    assert any(f"not checked for clips the model trained on: its training data ({tmp_path / 'train'}) is not there"
               in w for w in ev.warnings)  # fmt: skip


def test_an_onnx_export_of_the_run_gets_its_own_report(run, data_dir):
    other = data_dir / "keypoints" / "webcam" / "ilkerdemir-s"
    assert main(["export", str(run), "--onnx", str(run / "model.onnx")]) == 0
    ev = evaluate_run(run / "model.onnx", other, "all")
    assert ev.files["report"] == str(run / "eval-model-onnx-ilkerdemir-s-all" / "report.md")

