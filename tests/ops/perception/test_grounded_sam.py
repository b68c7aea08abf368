"""Grounded-SAM adapter end to end with tiny random GroundingDINO and SAM (offline), and its detection
rules on hand-made detector outputs."""

import types

import numpy as np
import pytest
import torch

from ops.hub import CheckpointError
from ops.occ3d import CLASS_ID, FREE, UNOBSERVED
from ops.perception import ImageBatch, build_segmenter
from ops.perception.grounded_sam import GroundedSAM, nms, phrase_spans
from ops.perception.vocabulary import Vocabulary
from tests.support.random_models import grounding_dino, sam

K = np.array([[100.0, 0, 80], [0, 100, 45], [0, 0, 1]])


@pytest.fixture(scope="module")
def models():
    return grounding_dino("test"), sam("test")


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(n)]


def batch(imgs):
    return ImageBatch([f"img{i}.jpg" for i in range(len(imgs))], [K] * len(imgs), imgs)


def test_end_to_end_shapes_classes_and_batching(models):
    (d, dp), (s, sp) = models
    seg = GroundedSAM(d, dp, s, sp, box_threshold=0.0, text_threshold=0.0, batch_size=3)
    assert len(seg.chunks) == 1  # 41 phrases, one query
    imgs = images(3)
    out = seg(batch(imgs))
    allowed = set(Vocabulary.default().classes) | {UNOBSERVED}
    for o in out:
        assert o.shape == (90, 160) and o.dtype == np.uint8
        assert set(np.unique(o).tolist()) <= allowed
    assert len(np.unique(np.concatenate(out))) > 2  # masks of several classes were painted
    singles = GroundedSAM(d, dp, s, sp, box_threshold=0.0, text_threshold=0.0, batch_size=1)
    for img, o in zip(imgs, out):
        np.testing.assert_array_equal(singles(batch([img]))[0], o)  # a batch of N equals N singles
    none = GroundedSAM(d, dp, s, sp, box_threshold=1.0)
    assert all((o == UNOBSERVED).all() for o in none(batch(imgs[:1])))  # nothing detected: all unknown


def test_long_vocabularies_are_split_into_as_few_queries_as_fit(models):
    (_, _), (s, sp) = models
    d, dp = grounding_dino("test", max_text_len=24)
    seg = GroundedSAM(d, dp, s, sp, box_threshold=0.0, text_threshold=0.0)
    tok = dp.tokenizer
    assert len(seg.chunks) > 1
    assert [i for c in seg.chunks for i in c] == list(range(41))
    calls = []
    d.register_forward_hook(lambda *a: calls.append(1))
    for chunk, (text, spans) in zip(seg.chunks, seg.queries):
        ids = tok(text)["input_ids"]
        assert len(ids) <= 24
        assert [tok.decode(ids[a:b]) for a, b in spans] == [seg.vocab.phrases[i] for i in chunk]
    out = seg(batch(images(2)))
    assert len(calls) == len(seg.chunks)  # one pass per query, all images together
    assert all(o.shape == (90, 160) for o in out)


class FakeDetector(torch.nn.Module):
    """Returns fixed logits and boxes: hand-made detections."""

    def __init__(self, logits, boxes):
        super().__init__()
        self.config = types.SimpleNamespace(max_text_len=logits.shape[-1])
        self.logits, self.boxes = logits, boxes
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, **inputs):
        b = inputs["pixel_values"].shape[0]
        return types.SimpleNamespace(logits=self.logits.expand(b, -1, -1), pred_boxes=self.boxes.expand(b, -1, -1))


def test_detection_rules_on_hand_made_logits(models):
    (_, dp), (s, sp) = models
    vocab = Vocabulary.from_mapping({"car": ["car"], "manmade": ["traffic light"], "free": ["sky"]})
    text, spans = phrase_spans(dp.tokenizer, vocab, [0, 1, 2])
    assert text == "car . traffic light . sky ." and spans == [(1, 2), (3, 5), (6, 7)]
    big, low = 10.0, -10.0
    logits = torch.full((1, 5, 16), low)
    logits[0, 0, 1] = big  # query 0: car, p = 1
    logits[0, 1, 3] = logits[0, 1, 4] = 2.0  # query 1: traffic light, both words agree (p = 0.88)
    logits[0, 2, 3] = 2.0  # query 2: only "traffic": score 0.88 but mean 0.44 < text threshold 0.5
    logits[0, 3, 6] = 0.0  # query 3: sky at p = 0.5, below the box threshold 0.6
    logits[0, 4, 1] = 1.0  # query 4: car again, p = 0.73, overlaps query 0 -> suppressed
    boxes = torch.tensor(
        [[[0.25, 0.5, 0.5, 1.0], [0.75, 0.5, 0.5, 1.0], [0.5, 0.5, 1, 1], [0.5, 0.5, 1, 1], [0.26, 0.5, 0.5, 1.0]]]
    )
    seg = GroundedSAM(FakeDetector(logits, boxes), dp, s, sp, vocab, box_threshold=0.6, text_threshold=0.5, nms_iou=0.5)
    ((scores, classes, xyxy),) = seg.detect(images(1))
    assert classes.tolist() == [CLASS_ID["car"], CLASS_ID["manmade"]]
    np.testing.assert_allclose(scores.numpy(), torch.sigmoid(torch.tensor([big, 2.0])).numpy(), rtol=1e-6)
    np.testing.assert_allclose(xyxy.numpy(), [[0, 0, 80, 90], [80, 0, 160, 90]], atol=1e-4)
    # without suppression the second car stays, listed after the better one
    seg2 = GroundedSAM(
        FakeDetector(logits, boxes), dp, s, sp, vocab, box_threshold=0.6, text_threshold=0.5, nms_iou=None
    )
    assert seg2.detect(images(1))[0][1].tolist() == [CLASS_ID["car"], CLASS_ID["manmade"], CLASS_ID["car"]]
    # a sky detection maps to free
    logits[0, 3, 6] = big
    seg3 = GroundedSAM(FakeDetector(logits, boxes), dp, s, sp, vocab, box_threshold=0.6, text_threshold=0.5)
    assert FREE in seg3.detect(images(1))[0][1].tolist()


def test_nms_keeps_the_best_of_overlapping_boxes():
    b = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    s = torch.tensor([0.5, 0.9, 0.4, 0.5])
    assert nms(b, s, 0.5).tolist() == [1, 2]
    assert sorted(nms(b, s, 1.0).tolist()) == [0, 1, 2, 3]


def test_loads_saved_checkpoints_and_names_missing_ones(models, tmp_path):
    (d, dp), (s, sp) = models
    d.save_pretrained(tmp_path / "gd")
    dp.save_pretrained(tmp_path / "gd")
    s.save_pretrained(tmp_path / "sam")
    sp.save_pretrained(tmp_path / "sam")
    seg = build_segmenter(
        "grounded_sam",
        detector=str(tmp_path / "gd"),
        sam=str(tmp_path / "sam"),
        vocabulary={"car": ["car", "sedan"], "driveable_surface": "road"},
        box_threshold=0.0,
        text_threshold=0.0,
    )
    out = seg(batch(images(1)))[0]
    assert set(np.unique(out).tolist()) <= {CLASS_ID["car"], CLASS_ID["driveable_surface"], UNOBSERVED}
    with pytest.raises(CheckpointError, match="no checkpoint at .*nowhere"):
        build_segmenter("grounded_sam", detector=str(tmp_path / "nowhere"), sam=str(tmp_path / "sam"))
    with pytest.raises(CheckpointError, match="could not load 'easyocc-test/not-a-model'.*HF_HUB_OFFLINE"):
        build_segmenter("grounded_sam", detector="easyocc-test/not-a-model", sam=str(tmp_path / "sam"))
    with pytest.raises(ValueError, match="empty"):
        build_segmenter("grounded_sam", detector=str(tmp_path / "gd"), sam=str(tmp_path / "sam"), vocabulary={})


def test_precision_and_bad_input(models):
    (d, dp), (s, sp) = models
    with pytest.raises(ValueError, match="fp16 runs on a GPU only"):
        GroundedSAM(d, dp, s, sp, precision="fp16", device="cpu")
    seg = GroundedSAM(d, dp, s, sp, precision="bf16", device="cpu", box_threshold=0.0, text_threshold=0.0)
    assert seg(batch(images(1)))[0].shape == (90, 160)
    d.float(), s.float()
    with pytest.raises(ValueError, match="img0.jpg: expected an RGB image \\(H, W, 3\\).*grayscale"):
        seg(batch([np.zeros((90, 160), np.uint8)]))
