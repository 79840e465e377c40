import numpy as np
import pytest

from signrec import layout


def test_sizes_and_order():
    assert layout.NUM_FEATURES == 1662
    assert [c.size for c in layout.COMPONENTS.values()] == [132, 1404, 63, 63]
    assert layout.POSE.slice == slice(0, 132)
    assert layout.FACE.slice == slice(132, 1536)
    assert layout.LEFT_HAND.slice == slice(1536, 1599)
    assert layout.RIGHT_HAND.slice == slice(1599, 1662)
    assert layout.subset_size("pose_hands") == 258
    assert layout.subset_size("hands") == 126
    assert layout.subset_size("all") == 1662


def test_unknown_subset_lists_known_ones():
    with pytest.raises(KeyError, match="pose_hands"):
        layout.subset_size("elbows")


def test_presence_detects_zero_blocks():
    frames = np.zeros((3, 1662), np.float32)
    frames[0, layout.POSE.slice] = 0.5
    frames[1, layout.RIGHT_HAND.slice] = 0.1
    frames[2] = 1.0
    found = layout.presence(frames)
    assert found.tolist() == [[True, False, False, False], [False, False, False, True], [True] * 4]
    assert layout.presence_summary(frames)["pose"] == pytest.approx(2 / 3)


def test_expand_and_take_round_trip_marks_the_parts_not_stored_missing():
    rng = np.random.default_rng(0)
    rows = rng.random((5, 258), dtype=np.float32) + 0.1
    full = layout.expand(rows, layout.check_parts("pose_hands"))
    assert full.shape == (5, 1662)
    np.testing.assert_array_equal(layout.take(full, "pose_hands"), rows)
    assert not layout.presence(full)[:, 1].any()  # face missing
    assert layout.parts_found(full) == ("pose", "left_hand", "right_hand")
    assert layout.subset_for_width(258) == "pose_hands"
    assert layout.subset_for_width(1000) is None
    hands = layout.expand(rows[:, 132:], ("right_hand", "left_hand"))  # any order in, layout order out
    np.testing.assert_array_equal(hands[:, layout.LEFT_HAND.slice], rows[:, 132:195])
    assert layout.parts_width(("left_hand", "right_hand")) == 126
    with pytest.raises(ValueError, match="unknown keypoint parts"):
        layout.check_parts("hands+tail")
    with pytest.raises(ValueError, match=r"expected \(frames, 126\)"):
        layout.expand(rows, layout.check_parts("hands"))


def test_check_frames_names_the_source():
    with pytest.raises(ValueError, match=r"clip\.npy: expected keypoints of shape \(frames, 1662\)"):
        layout.check_frames(np.zeros((4, 10)), "clip.npy")


def test_pose_mirror_permutation_is_an_involution():
    perm = np.array(layout.POSE_MIRROR_PERMUTATION)
    assert sorted(perm) == list(range(33))
    np.testing.assert_array_equal(perm[perm], np.arange(33))
    assert perm[layout.POSE_LEFT_WRIST] == layout.POSE_RIGHT_WRIST
