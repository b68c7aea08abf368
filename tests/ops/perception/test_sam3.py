"""The SAM 3 segmenter: a tiny random Sam3Model end to end (offline), batching of images and of prompts,
and the merging rules checked exactly with a stand-in model of known outputs."""

import types

import numpy as np
import pytest
import torch

from ops.hub import CheckpointError
from ops.occ3d import FREE, UNOBSERVED
from ops.perception import ImageBatch, build_segmenter
from ops.perception.sam3 import Sam3Segmenter
from ops.perception.vocabulary import Vocabulary
from tests.support.random_models import sam3


def K(w, h):
    return np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], float)


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [(90, 160), (45, 80), (90, 160)]
    return [rng.integers(0, 256, (*sizes[i % 3], 3), dtype=np.uint8) for i in range(n)]


def batch(imgs):
    return ImageBatch([f"i{j}.jpg" for j in range(len(imgs))], [K(im.shape[1], im.shape[0]) for im in imgs], imgs)


@pytest.fixture(scope="module")
def tiny():
    return sam3("test")


def test_end_to_end_batches_of_images_and_of_prompts_change_nothing(tiny):
    model, tok = tiny
    seg = Sam3Segmenter(model, tok, score_threshold=0.0, batch_size=2, prompts_per_pass=7)
    imgs = images()
    out = seg(batch(imgs))
    for o, img in zip(out, imgs):
        assert o.shape == img.shape[:2] and o.dtype == np.uint8
        assert set(np.unique(o).tolist()) <= set(range(FREE + 1)) | {UNOBSERVED}
    assert any((o != UNOBSERVED).any() for o in out)  # threshold 0: instances were found
    for j, img in enumerate(imgs):  # a batch of N equals N singles
        assert np.array_equal(seg(batch([img]))[0], out[j])
    one_per_pass = Sam3Segmenter(model, tok, score_threshold=0.0, batch_size=3, prompts_per_pass=1)
    for a, b in zip(one_per_pass(batch(imgs)), out):  # one prompt per pass: the same maps
        assert np.array_equal(a, b)


def test_the_image_is_encoded_once_for_every_prompt(tiny):
    model, tok = tiny
    seg = Sam3Segmenter(model, tok, batch_size=4, prompts_per_pass=16)
    calls = []
    encode = model.get_vision_features
    model.get_vision_features = lambda **kw: calls.append(kw["pixel_values"].shape) or encode(**kw)
    try:
        seg(batch(images(2)))
    finally:
        del model.get_vision_features
    assert calls == [(2, 3, 56, 56)]  # one pass for both images, all 41 phrases


class Known(torch.nn.Module):
    """Stand-in for Sam3Model: instance q of phrase p on image i has score logit `logits[p][q]` and a mask
    covering the columns `columns[p][q]` (of 8) of every row; presence logit `presence[p]`. The phrase is
    read back from the text features (filled with p), the image from the vision features."""

    def __init__(self, logits, columns, presence):
        super().__init__()
        self.logits, self.columns, self.presence = logits, columns, presence
        self.config = types.SimpleNamespace(vision_config=types.SimpleNamespace(image_size=16))
        self.w = torch.nn.Parameter(torch.ones(1))

    def get_text_features(self, input_ids, attention_mask):
        p = torch.arange(len(input_ids), dtype=torch.float32)
        return types.SimpleNamespace(pooler_output=p.view(-1, 1, 1).expand(-1, input_ids.shape[1], 4).clone())

    def get_vision_features(self, pixel_values):
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        b = len(pixel_values)
        return Sam3VisionEncoderOutput(
            last_hidden_state=torch.zeros(b, 4, 4),
            fpn_hidden_states=(torch.zeros(b, 1),),
            fpn_position_encoding=(torch.zeros(1, 1),),
        )

    def forward(self, vision_embeds, text_embeds, attention_mask):
        phrases = text_embeds.pooler_output[:, 0, 0].long().tolist()
        q = max(len(v) for v in self.logits)
        logits = torch.full((len(phrases), q), -30.0)
        masks = torch.full((len(phrases), q, 4, 8), -30.0)
        for j, p in enumerate(phrases):
            for k, (lg, cols) in enumerate(zip(self.logits[p], self.columns[p])):
                logits[j, k] = lg
                masks[j, k, :, cols[0] : cols[1]] = 30.0
        presence = torch.tensor([[self.presence[p]] for p in phrases])
        return types.SimpleNamespace(pred_logits=logits, presence_logits=presence, pred_masks=masks)


VOCAB = Vocabulary.from_mapping({"car": ["car"], "free": ["sky"], "driveable_surface": ["road"]})


def classes_of(vocab):
    return dict(zip(vocab.phrases, vocab.classes))


def test_merging_rules_with_known_outputs():
    cls = classes_of(VOCAB)
    # car: a strong instance on columns 0-4 and a weak one (below the threshold) on 6-8;
    # road: columns 2-6, score between the car's; sky: columns 5-6, but the concept judged absent
    logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
    phrases = VOCAB.phrases
    logits = {
        phrases.index("car"): [logit(0.9), logit(0.2)],
        phrases.index("road"): [logit(0.6)],
        phrases.index("sky"): [logit(0.95)],
    }
    columns = {phrases.index("car"): [(0, 4), (6, 8)], phrases.index("road"): [(2, 6)], phrases.index("sky"): [(5, 7)]}
    presence = {phrases.index("car"): 30.0, phrases.index("road"): 30.0, phrases.index("sky"): logit(0.3)}
    seg = Sam3Segmenter(
        Known([logits[i] for i in range(3)], [columns[i] for i in range(3)], [presence[i] for i in range(3)]),
        tokenizer=_tokenizer(),
        vocabulary=VOCAB,
        score_threshold=0.4,
    )
    out = seg(ImageBatch(["a.jpg"], [K(16, 8)], [np.zeros((8, 16, 3), np.uint8)]))[0]
    # masks are 4 x 8 at the input, resized to the 8 x 16 image: column c covers image columns 2c, 2c + 1
    row = out[0]
    assert (out == row).all()
    assert row[:8].tolist() == [cls["car"]] * 8  # 0.9 beats the road's 0.6 where both cover
    assert row[8:12].tolist() == [cls["road"]] * 4
    assert row[12:].tolist() == [UNOBSERVED] * 4  # sky 0.95 x 0.3 < 0.4; the weak car dropped
    seg.score_threshold = 0.1
    out = seg(ImageBatch(["a.jpg"], [K(16, 8)], [np.zeros((8, 16, 3), np.uint8)]))[0][0]
    # painted by score: weak car 0.2 (12-15), sky 0.285 (10-13), road 0.6 (4-11), car 0.9 (0-7)
    assert out.tolist() == [cls["car"]] * 8 + [cls["road"]] * 4 + [FREE] * 2 + [cls["car"]] * 2
    seg.max_detections = 1
    out = seg(ImageBatch(["a.jpg"], [K(16, 8)], [np.zeros((8, 16, 3), np.uint8)]))[0][0]
    assert out[:8].tolist() == [cls["car"]] * 8 and (out[8:] == UNOBSERVED).all()  # only the best instance


def _tokenizer():
    from tests.support.random_models import word_tokenizer

    return word_tokenizer(["car", "sky", "road"])


def test_checkpoints_load_from_a_folder_and_a_missing_one_is_named(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path / "sam3")
    tok.save_pretrained(tmp_path / "sam3")
    seg = build_segmenter("sam3", checkpoint=str(tmp_path / "sam3"), score_threshold=0.0, device="cpu")
    ref = Sam3Segmenter(model, tok, score_threshold=0.0)
    img = images(1)
    assert np.array_equal(seg(batch(img))[0], ref(batch(img))[0])
    with pytest.raises(CheckpointError, match="sam3 segmenter .*no checkpoint at .*nothing"):
        build_segmenter("sam3", checkpoint=str(tmp_path / "nothing"))
    with pytest.raises(CheckpointError, match="facebook/sam3.*HF_HUB_OFFLINE"):
        build_segmenter("sam3")
    with pytest.raises(ValueError, match="thresholds must lie in"):
        Sam3Segmenter(model, tok, score_threshold=1.5)
