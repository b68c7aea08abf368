"""The adapters in half precision on a GPU (runs where torch sees CUDA; skipped elsewhere)."""

import numpy as np
import pytest
import torch

from ops.perception import ImageBatch
from ops.perception.grounded_sam import GroundedSAM
from ops.perception.hf_depth import HFDepth
from ops.perception.vocabulary import Vocabulary
from tests.support.random_models import depth_model, grounding_dino, sam

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
K = np.array([[100.0, 0, 80], [0, 100, 45], [0, 0, 1]])


def batch(n=2):
    rng = np.random.default_rng(0)
    return ImageBatch(
        [f"i{j}" for j in range(n)], [K] * n, [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(n)]
    )


def test_grounded_sam_fp16_on_the_gpu():
    (d, dp), (s, sp) = grounding_dino("test"), sam("test")
    seg = GroundedSAM(d, dp, s, sp, box_threshold=0.0, text_threshold=0.0, device="cuda", precision="auto")
    assert seg.dtype == torch.float16
    allowed = set(Vocabulary.default().classes) | {255}
    for o in seg(batch()):
        assert o.shape == (90, 160) and set(np.unique(o).tolist()) <= allowed


@pytest.mark.parametrize("kind,size", [("depth_anything_v2", 126), ("depth_pro", 128), ("zoedepth", (64, 96))])
def test_depth_fp16_on_the_gpu_is_close_to_fp32(kind, size):
    model = depth_model(kind)
    b = batch()
    ref = HFDepth(model, kind, input_size=size, device="cpu")(b)
    half = HFDepth(depth_model(kind), kind, input_size=size, device="cuda", precision="fp16")(b)
    for r, h in zip(ref, half):
        assert h.shape == r.shape and np.isfinite(h).all()
        # fp16 rounds a random network's near-zero inverse depths (DepthPro: 38 of 14,400 pixels on an H200,
        # 2026-12-04) far from fp32's: nearly every pixel within 5 %, the median far closer
        inv_h, inv_r = 1 / np.maximum(h, 1e-3), 1 / np.maximum(r, 1e-3)
        close = np.isclose(inv_h, inv_r, rtol=0.05, atol=0.05)
        assert close.mean() > 0.99, f"{kind}: only {close.mean():.2%} of the pixels within 5 % of fp32"
        assert np.median(np.abs(inv_h - inv_r) / np.maximum(np.abs(inv_r), 1e-6)) < 0.01
