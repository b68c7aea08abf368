"""Perception speed: images per second of the Grounded-SAM adapter with the packed vocabulary (one detector
pass per image for all 41 phrases) against one prompt per pass (the way peers run GroundingDINO), of the
SAM 3 adapter (one image encoding for all 41 concept prompts) against one prompt per pass (the image
encoded again for each prompt, as `Sam3Processor(images, text)` per phrase does), and of each
transformers depth backend. Models have the real checkpoints' architectures with RANDOM weights
(they take the same time as trained ones; nothing is downloaded).

    python benchmarks/bench_perception.py                       # CPU: reduced input sizes (see --scale)
    python benchmarks/bench_perception.py --device cuda --scale 1 --detector base --sam huge
    python benchmarks/bench_perception.py --skip gsam,depth --scale 0.333    # SAM 3 alone, CPU

Random weights make random detections: both modes keep the same number of boxes per image
(`--boxes`), so SAM does the same work in both and the difference is the detector passes.
Metric3D is not timed here (its hub code needs its own dependencies and CUDA).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository: the random-weight models of tests/support

from ops.perception import ImageBatch  # noqa: E402
from ops.perception.grounded_sam import GroundedSAM, phrase_spans  # noqa: E402
from ops.perception.hf_depth import HFDepth  # noqa: E402
from ops.perception.vocabulary import Vocabulary  # noqa: E402
from ops.perception.sam3 import Sam3Segmenter  # noqa: E402
from tests.support.random_models import depth_model, grounding_dino, sam, sam3  # noqa: E402


def timed(fn, repeat: int, sync, warm_up: bool = True) -> float:
    if warm_up:
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - start) / repeat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--scale", type=float, default=0.5, help="model input sizes times this (1 = the checkpoints')")
    ap.add_argument("--detector", default="tiny", choices=["tiny", "base"])
    ap.add_argument("--sam", default="base", choices=["base", "large", "huge"])
    ap.add_argument("--images", type=int, default=1, help="images per batch")
    ap.add_argument("--boxes", type=int, default=20, help="detections kept per image in both modes")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma-separated: gsam,per_phrase,sam3,sam3_per_phrase,depth")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    skip = set(filter(None, args.skip.split(",")))
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (900, 1600, 3), dtype=np.uint8) for _ in range(args.images)]
    K = np.array([[1266.0, 0, 816], [0, 1266.0, 491], [0, 0, 1]])
    batch = ImageBatch([f"img{i}.jpg" for i in range(len(imgs))], [K] * len(imgs), imgs)
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {gpu}; images 1600x900, batch {args.images}; input scale {args.scale}")
    print("| model | input | mode | detector passes/image | s/image | images/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    if "gsam" not in skip:
        short, long_ = int(800 * args.scale), int(1333 * args.scale)
        det, det_proc = grounding_dino(args.detector, image_size=(short, long_))
        sam_side = int(round(1024 * args.scale / 16)) * 16
        sam_model, sam_proc = sam(args.sam, image_size=sam_side)
        seg = GroundedSAM(det, det_proc, sam_model, sam_proc, box_threshold=0.0, text_threshold=0.0, nms_iou=None,
                          max_detections=args.boxes, device=args.device, precision=args.precision,
                          batch_size=args.images)
        vocab = Vocabulary.default()
        packed = timed(lambda: seg(batch), args.repeat, sync) / len(imgs)
        name = f"grounding-dino-{args.detector} + sam-vit-{args.sam}"
        size = f"{short}x{long_} / {sam_side}"
        print(f"| {name} | {size} | packed vocabulary ({len(vocab)} phrases) | {len(seg.chunks)} | {packed:.3f} | "
              f"{1 / packed:.3f} | |", flush=True)
        if "per_phrase" not in skip:
            seg.chunks = [[i] for i in range(len(vocab))]
            seg.queries = [phrase_spans(det_proc.tokenizer, vocab, c) for c in seg.chunks]
            per = timed(lambda: seg(batch), args.repeat, sync, warm_up=False) / len(imgs)  # warm from above
            print(f"| {name} | {size} | one prompt per pass | {len(seg.chunks)} | {per:.3f} | {1 / per:.3f} | "
                  f"packed is {per / packed:.1f}x faster |", flush=True)
    if "sam3" not in skip:
        side = max(336, int(round(1008 * args.scale / 336)) * 336)    # a multiple of 14 x its window of 24
        model, tok = sam3("real", image_size=side)
        seg = Sam3Segmenter(model, tok, score_threshold=0.0, max_detections=args.boxes, device=args.device,
                            precision=args.precision, batch_size=args.images, prompts_per_pass=64)
        n = len(seg.vocab)
        shared = timed(lambda: seg(batch), args.repeat, sync) / len(imgs)
        print(f"| sam3 (facebook/sam3 architecture) | {side} | one image encoding, {n} prompts in "
              f"{-(-n * args.images // seg.prompts_per_pass)} decoder pass(es) | 1 (image encoder) | {shared:.3f} | "
              f"{1 / shared:.3f} | |", flush=True)
        if "sam3_per_phrase" not in skip:
            per = timed(lambda: sam3_per_prompt(seg, imgs), args.repeat, sync, warm_up=False) / len(imgs)
            print(f"| sam3 (facebook/sam3 architecture) | {side} | one prompt per pass (image encoded per prompt) | "
                  f"{n} (image encoder) | {per:.3f} | {1 / per:.3f} | shared encoding is {per / shared:.1f}x faster |", flush=True)
        del seg, model
    if "depth" not in skip:
        for kind, size, base in (("depth_anything_v2", "small", 518), ("depth_anything_v2", "large", 518),
                                 ("depth_pro", "real", 1536), ("zoedepth", "real", (384, 512))):
            if kind == "depth_pro":
                side = base        # DepthPro's tiling needs its full 1536 input (384 / 0.25)
            elif kind == "zoedepth":
                side = tuple(int(round(s * args.scale / 32)) * 32 for s in base)
            else:
                side = int(round(base * args.scale / 14)) * 14
            est = HFDepth(depth_model(kind, size), kind, input_size=side, device=args.device, precision=args.precision,
                          batch_size=args.images)
            t = timed(lambda: est(batch), args.repeat, sync) / len(imgs)
            print(f"| {kind} ({size}) | {side} | | | {t:.3f} | {1 / t:.3f} | |", flush=True)
            del est


@torch.inference_mode()
def sam3_per_prompt(seg: Sam3Segmenter, images) -> None:
    """SAM 3 the way one prompt per call runs it: the whole model (vision encoder included) per phrase,
    each image alone; the text features are the adapter's (the text encoder is cheap either way)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    for img in images:
        x = seg.pixels([img])
        for p in range(len(seg.vocab)):
            text = seg.text[p:p + 1]
            seg.model(pixel_values=x, text_embeds=BaseModelOutputWithPooling(last_hidden_state=text, pooler_output=text),
                      attention_mask=seg.text_mask[p:p + 1])


if __name__ == "__main__":
    main()
