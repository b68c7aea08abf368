"""The segmenter's vocabulary, prompt packing and score-ordered mask merging, on hand-made detections."""

import numpy as np
import pytest

from ops.occ3d import CLASS_ID, FREE, UNOBSERVED
from ops.perception.vocabulary import DEFAULT_VOCABULARY, Vocabulary, merge_masks


def words(text):  # a stand-in tokenizer: [CLS] + one token per word or '.' + [SEP]
    return len(text.split()) + 2


def test_default_vocabulary_covers_every_named_class_and_sky():
    v = Vocabulary.default()
    assert len(v) == sum(len(p) for p in DEFAULT_VOCABULARY.values()) == 41
    assert set(v.classes) == set(range(1, 18))
    assert v.classes[v.phrases.index("sky")] == FREE
    assert v.classes[v.phrases.index("traffic light")] == CLASS_ID["manmade"]
    assert v.classes[v.phrases.index("lorry")] == CLASS_ID["truck"]


def test_packing_fills_queries_in_order_and_respects_the_limit():
    v = Vocabulary.default()
    assert v.pack(words, 256) == [list(range(41))]  # the default fits one GroundingDINO query
    for limit in (8, 13, 40):
        chunks = v.pack(words, limit)
        assert [i for c in chunks for i in c] == list(range(41))
        assert all(words(v.query_text(c)) <= limit for c in chunks)
        # greedy: no chunk could take the next chunk's first phrase
        assert all(words(v.query_text(a + b[:1])) > limit for a, b in zip(chunks, chunks[1:]))
    assert len(v.pack(words, 40)) < len(v.pack(words, 13))
    with pytest.raises(ValueError, match="'traffic island' alone is longer"):
        v.pack(words, 4)
    assert v.query_text([0, 1]) == "car . sedan ."


def test_vocabulary_from_mapping_and_bad_vocabularies():
    v = Vocabulary.from_mapping({"car": "Car", "vegetation": ["tree", "hedge"], 17: "sky"})
    assert v.phrases == ("car", "tree", "hedge", "sky") and v.classes == (4, 16, 16, 17)
    with pytest.raises(ValueError, match="empty"):
        Vocabulary.from_mapping({})
    with pytest.raises(ValueError, match="'vehicle' is not an Occ3D class"):
        Vocabulary.from_mapping({"vehicle": ["car"]})
    with pytest.raises(ValueError, match="appears twice"):
        Vocabulary.from_mapping({"car": ["car"], "truck": ["car"]})
    with pytest.raises(ValueError, match="without surrounding spaces or '.'"):
        Vocabulary(("a. b",), (4,))
    with pytest.raises(ValueError, match="class 18"):
        Vocabulary(("x",), (18,))


def test_highest_score_wins_each_pixel_ties_go_to_the_first_listed():
    h, w = 4, 6
    m = np.zeros((4, h, w), bool)
    m[0, :, :4] = True  # road, score 0.3
    m[1, 1:3, 2:5] = True  # car, score 0.8: wins its overlap with the road
    m[2, 0, :] = True  # sky, score 0.5
    m[3, 0, 0] = True  # truck, score 0.5: ties with sky at (0, 0), listed later: loses
    sem = merge_masks(m, [0.3, 0.8, 0.5, 0.5], [11, 4, FREE, 10], (h, w))
    expect = np.array(
        [
            [17, 17, 17, 17, 17, 17],
            [11, 11, 4, 4, 4, UNOBSERVED],
            [11, 11, 4, 4, 4, UNOBSERVED],
            [11, 11, 11, 11, UNOBSERVED, UNOBSERVED],
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(sem, expect)
    # order of the detections does not matter beyond the tie rule
    perm = [1, 0, 2, 3]
    np.testing.assert_array_equal(merge_masks(m[perm], [0.8, 0.3, 0.5, 0.5], [4, 11, FREE, 10], (h, w)), expect)
    # nothing detected: all unknown
    assert (merge_masks(np.zeros((0, h, w), bool), [], [], (h, w)) == UNOBSERVED).all()
    with pytest.raises(ValueError, match="merge_masks"):
        merge_masks(m, [0.1], [4], (h, w))
