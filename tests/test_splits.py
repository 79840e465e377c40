"""Named split specs and filters on real stores."""

import pytest

from signrec.splits import Split, auto_kind, check_spec, filter_store, make_split, signer_folds
from signrec.store import StoreWriter, import_keypoints, open_store


@pytest.fixture(scope="module")
def hands(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("hands")
    import_keypoints(data_dir / "keypoints" / "wlasl300-hands", out, progress=False)
    return open_store(out)


@pytest.fixture(scope="module")
def webcam(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("webcam")
    import_keypoints(data_dir / "keypoints" / "webcam", out, progress=False)
    return open_store(out)


@pytest.mark.slow
def test_official_train_val_without_a_test_split(hands):
    """Issue 14: a train+val folder could not use its official split (a test part was required)."""
    split = make_split(hands, "official")
    assert (len(split.train), len(split.val), len(split.test)) == (1876, 443, 0)
    assert split.eval_side == "val" and "no test split" in split.how
    assert auto_kind(hands) == "official"


def test_where_keeps_the_rows_whose_column_matches(hands):
    w100 = filter_store(hands, ["wlasl100=1"])
    assert len(w100) == 906 and len(w100.glosses) == 100
    split = make_split(w100, "auto")
    assert (len(split.train), len(split.val)) == (741, 165)
    assert len(filter_store(hands, "wlasl100!=1")) == 2319 - 906
    assert len(filter_store(hands, ["wlasl100=1", "split=val"])) == 165
    with pytest.raises(ValueError, match="has no column wlasl1000"):
        filter_store(hands, ["wlasl1000=1"])
    with pytest.raises(ValueError, match="no clip of .* matches"):
        filter_store(hands, ["gloss=unicorn"])
    with pytest.raises(ValueError, match="expected COLUMN=VALUE"):
        filter_store(hands, ["wlasl100"])


def test_signer_disjoint_keeps_every_person_on_one_side(webcam):
    assert auto_kind(webcam) == "signer"  # signers known, no official split
    folds = signer_folds(webcam)
    assert sorted(s for f in folds for s in f) == webcam.signers and len(folds) == 5
    seen_test = set()
    for fold in range(5):
        split = make_split(webcam, f"signer:{fold}")
        sides = {name: {webcam.get(p).signer for p in paths} for name, paths in split.sides().items()}
        assert not (sides["train"] & sides["val"]) and not (sides["train"] & sides["test"]) and not (sides["val"] & sides["test"])
        assert len(sides["test"]) == 1 and len(sides["val"]) == 1
        seen_test |= sides["test"]
        assert sorted(split.train + split.val + split.test) == sorted(c.path for c in webcam.clips)
    assert seen_test == set(webcam.signers)  # each person is tested once over the folds
    assert make_split(webcam, "signer:2").sides() == make_split(webcam, "signer:2").sides()  # deterministic
    assert "signers in training and in val/test: 0" in make_split(webcam, "auto").describe(webcam)


def test_signer_disjoint_on_wlasl300_from_train_and_val_pooled(hands):
    split = make_split(hands, "signer")
    train = {hands.get(p).signer for p in split.train}
    assert not train & {hands.get(p).signer for p in split.val + split.test}
    assert len(split.test) > 200 and len(split.val) > 200


def test_stratified_official_with_carved_validation_and_files(data_dir, webcam, tmp_path):
    store = open_store(data_dir / "keypoints" / "wlasl-b")
    assert auto_kind(store) == "stratified"
    split = make_split(store, "stratified:1")
    assert set(split.train).isdisjoint(split.test) and {store.get(p).gloss for p in split.test} == set(store.glosses)
    assert make_split(store, "stratified:1").sides() == split.sides() != make_split(store, "stratified:2").sides()
    split.save(tmp_path / "split.json")
    again = make_split(store, str(tmp_path / "split.json"))
    assert again.sides() == split.sides() and Split.load(tmp_path / "split.json").how == split.how
    with StoreWriter(tmp_path / "tt") as w:  # an official split with train and test but no val
        for c in webcam.clips[::4]:
            w.write(c.path, webcam.read(c), gloss=c.gloss, signer=c.signer,
                    split="test" if c.signer == "akashsharma095" else "train")  # fmt: skip
    tt = open_store(tmp_path / "tt")
    carved = make_split(tt, "official")
    assert carved.test and carved.val and "validation: stratified 15% of train" in carved.how
    assert {tt.get(p).split for p in carved.val} == {"train"}
    with pytest.raises(ValueError, match="needs a split"):
        make_split(webcam, "official")
    with pytest.raises(ValueError, match="unknown split 'random'"):
        check_spec("random")
    with pytest.raises(FileNotFoundError, match="no such split file"):
        check_spec(str(tmp_path / "nope.json"))
