"""Perception speed of every backend: images per second of the Grounded-SAM adapter with the packed vocabulary
(one detector pass per image for all 41 phrases) against one prompt per pass (the way peers run
GroundingDINO), of the SAM 3 adapter (one image encoding for all 41 concept prompts) against one prompt
per pass (the image encoded again for each prompt, as `Sam3Processor(images, text)` per phrase does), of
each transformers depth backend, and of Metric3D where its hub code is at hand. Models have the real
checkpoints' architectures with RANDOM weights (they take the same time as trained ones; nothing is
downloaded), on 1600 x 900 images.

    python benchmarks/bench_perception.py                       # CPU: reduced input sizes (see --scale)
    python benchmarks/bench_perception.py --device cuda --scale 1 --detector base --sam huge --precision fp16 \\
        --results benchmarks/RESULTS.md                         # a GPU: real input sizes, the table into RESULTS.md
    python benchmarks/bench_perception.py --skip gsam,depth --scale 0.333    # SAM 3 alone, CPU
    python benchmarks/bench_perception.py --models test --results /tmp/t.md  # tiny random models: a check that
                                                                # the script runs (the test suite runs it)

Random weights make random detections: both Grounded-SAM modes keep the same number of boxes per image
(`--boxes`), so SAM does the same work in both and the difference is the detector passes.
Metric3D: `--metric3d-repo DIR` (a clone of github.com/YvanYin/Metric3D with its dependencies; its ViT
code wants a GPU) with `--metric3d-variant`, random weights unless `--metric3d-weights FILE`; without
it the table says that it was not timed (so does a row whose model cannot be built there). `--results
FILE` puts the table under a heading with the device (the GPU's name) and the date, and the command that
made it, as the file's newest section (before its first `## ` heading).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # the repository: the random-weight models of tests/support

from ops.perception import ImageBatch  # noqa: E402
from ops.perception.grounded_sam import GroundedSAM, phrase_spans  # noqa: E402
from ops.perception.hf_depth import HFDepth  # noqa: E402
from ops.perception.sam3 import Sam3Segmenter  # noqa: E402
from ops.perception.vocabulary import Vocabulary  # noqa: E402
from tests.support.random_models import depth_model, grounding_dino, sam, sam3  # noqa: E402

# the depth backends timed: (kind, size of the random model, input at --scale 1); tiny ones for --models test
DEPTH = {
    "real": [
        ("depth_anything_v2", "small", 518),
        ("depth_anything_v2", "large", 518),
        ("depth_pro", "real", 1536),
        ("zoedepth", "real", (384, 512)),
    ],
    "test": [("depth_anything_v2", "test", 126), ("depth_pro", "test", 128), ("zoedepth", "test", (64, 96))],
}
HEADER = "| model | input | precision | mode | image-encoder passes/image | s/image | images/s | speed-up |"


def timed(fn, repeat: int, sync, warm_up: bool = True) -> float:
    if warm_up:
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - start) / repeat


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", help="auto (fp16 on a GPU, fp32 on the CPU), fp32, fp16, bf16")
    ap.add_argument("--scale", type=float, default=0.5, help="model input sizes times this (1 = the checkpoints')")
    ap.add_argument(
        "--models",
        default="real",
        choices=["real", "test"],
        help="real: the checkpoints' architectures; test: the tiny ones of the test suite",
    )
    ap.add_argument("--detector", default="tiny", choices=["tiny", "base"])
    ap.add_argument("--sam", default="base", choices=["base", "large", "huge"])
    ap.add_argument("--images", type=int, default=1, help="images per batch")
    ap.add_argument("--boxes", type=int, default=20, help="detections kept per image in both modes")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma-separated: gsam,per_phrase,sam3,sam3_per_phrase,depth,metric3d")
    ap.add_argument("--metric3d-repo", help="a local clone of the Metric3D repository (hubconf.py): times metric3d")
    ap.add_argument("--metric3d-variant", default="vit_giant2")
    ap.add_argument("--metric3d-weights", help="its weights file (default: random weights)")
    ap.add_argument("--results", help="append the table, with the device and the date, to this Markdown file")
    return ap.parse_args(argv)


def main(argv=None) -> list[str]:
    """Run the benchmark; returns the table's lines (also printed, and appended to --results)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with torch.no_grad():  # a context, not the global switch: a caller (the test suite) keeps its autograd
        return _run(parse(argv), argv)


def _run(args, argv: list[str]) -> list[str]:
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    skip = set(filter(None, args.skip.split(",")))
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (900, 1600, 3), dtype=np.uint8) for _ in range(args.images)]
    K = np.array([[1266.0, 0, 816], [0, 1266.0, 491], [0, 0, 1]])
    batch = ImageBatch([f"img{i}.jpg" for i in range(len(imgs))], [K] * len(imgs), imgs)
    device = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"
    )
    precision = _precision_name(args.precision, dev)
    rows: list[str] = []

    def row(line: str) -> None:
        rows.append(line)
        print(line, flush=True)

    print(f"device: {device}; images 1600x900, batch {args.images}; input scale {args.scale}; {args.models} models")
    print(HEADER + "\n|---|---|---|---|---|---|---|---|")
    common = dict(device=args.device, precision=args.precision, batch_size=args.images)
    if "gsam" not in skip:
        _grounded_sam(args, batch, sync, common, precision, row, "per_phrase" not in skip)
    if "sam3" not in skip:
        _sam3(args, batch, imgs, sync, common, precision, row, "sam3_per_phrase" not in skip)
    if "depth" not in skip:
        for kind, size, base in DEPTH[args.models]:
            side = _depth_input(kind, base, args.scale if args.models == "real" else 1.0)
            est = HFDepth(depth_model(kind, size), kind, input_size=side, **common)
            t = timed(lambda: est(batch), args.repeat, sync) / len(imgs)
            row(f"| {kind} ({size}) | {side} | {precision} | | 1 | {t:.3f} | {1 / t:.3f} | |")
            del est
    if "metric3d" not in skip:
        _metric3d(args, batch, sync, common, precision, row)
    if args.results:
        _append(Path(args.results), device, args, argv, rows)
    return rows


def _precision_name(precision: str, dev: torch.device) -> str:
    from ops.runtime import resolve_dtype

    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[resolve_dtype(precision, dev)]


def _depth_input(kind: str, base, scale: float):
    if kind == "depth_pro":
        return base  # DepthPro's tiling needs its full input (384 / 0.25 for the real model)
    if kind == "zoedepth":
        return tuple(int(round(s * scale / 32)) * 32 for s in base) if scale != 1 else base
    return int(round(base * scale / 14)) * 14


def _grounded_sam(args, batch, sync, common, precision, row, per_phrase: bool) -> None:
    if args.models == "test":
        (det, det_proc), (sam_model, sam_proc) = grounding_dino("test"), sam("test")
        size, name = "test", "grounding-dino (test) + sam (test)"
    else:
        short, long_ = int(800 * args.scale), int(1333 * args.scale)
        det, det_proc = grounding_dino(args.detector, image_size=(short, long_))
        sam_side = int(round(1024 * args.scale / 16)) * 16
        sam_model, sam_proc = sam(args.sam, image_size=sam_side)
        size, name = f"{short}x{long_} / {sam_side}", f"grounding-dino-{args.detector} + sam-vit-{args.sam}"
    seg = GroundedSAM(
        det,
        det_proc,
        sam_model,
        sam_proc,
        box_threshold=0.0,
        text_threshold=0.0,
        nms_iou=None,
        max_detections=args.boxes,
        **common,
    )
    vocab = Vocabulary.default()
    packed = timed(lambda: seg(batch), args.repeat, sync) / len(batch)
    row(
        f"| {name} | {size} | {precision} | packed vocabulary ({len(vocab)} phrases) | {len(seg.chunks)} | {packed:.3f} | "
        f"{1 / packed:.3f} | |"
    )
    if per_phrase:
        seg.chunks = [[i] for i in range(len(vocab))]
        seg.queries = [phrase_spans(det_proc.tokenizer, vocab, c) for c in seg.chunks]
        per = timed(lambda: seg(batch), args.repeat, sync, warm_up=False) / len(batch)  # warm from above
        row(
            f"| {name} | {size} | {precision} | one prompt per pass | {len(seg.chunks)} | {per:.3f} | {1 / per:.3f} | "
            f"packed is {per / packed:.1f}x faster |"
        )


def _sam3(args, batch, imgs, sync, common, precision, row, per_phrase: bool) -> None:
    if args.models == "test":
        model, tok = sam3("test")
        side, name = 56, "sam3 (test)"
    else:
        side = max(336, int(round(1008 * args.scale / 336)) * 336)  # a multiple of 14 x its window of 24
        model, tok = sam3("real", image_size=side)
        name = "sam3 (facebook/sam3 architecture)"
    seg = Sam3Segmenter(model, tok, score_threshold=0.0, max_detections=args.boxes, prompts_per_pass=64, **common)
    n = len(seg.vocab)
    shared = timed(lambda: seg(batch), args.repeat, sync) / len(imgs)
    row(
        f"| {name} | {side} | {precision} | one image encoding, {n} prompts in "
        f"{-(-n * len(imgs) // seg.prompts_per_pass)} decoder pass(es) | 1 | {shared:.3f} | {1 / shared:.3f} | |"
    )
    if per_phrase:
        per = timed(lambda: sam3_per_prompt(seg, imgs), args.repeat, sync, warm_up=False) / len(imgs)
        row(
            f"| {name} | {side} | {precision} | one prompt per pass (image encoded per prompt) | {n} | {per:.3f} | "
            f"{1 / per:.3f} | shared encoding is {per / shared:.1f}x faster |"
        )


def _metric3d(args, batch, sync, common, precision, row) -> None:
    """Metric3D from a local clone, with random weights unless a weights file is given; a row that says why
    where it cannot be built or run (its hub code has dependencies of its own, and parts of it want a GPU)."""
    from ops.perception.metric3d import INPUT_SIZE, Metric3DDepth, build_metric3d

    name = f"metric3d ({args.metric3d_variant})"
    if not args.metric3d_repo:
        row(f"| {name} | - | - | not timed: its hub code was not given (--metric3d-repo) | - | - | - | |")
        return
    side = tuple(int(round(s * args.scale / 14)) * 14 for s in INPUT_SIZE)
    try:
        if args.metric3d_weights:
            est = build_metric3d(
                args.metric3d_variant, repo=args.metric3d_repo, weights=args.metric3d_weights, input_size=side, **common
            )
        else:  # the architecture with random weights: nothing is downloaded
            model = torch.hub.load(
                args.metric3d_repo, f"metric3d_{args.metric3d_variant}", source="local", pretrain=False, trust_repo=True
            )
            est = Metric3DDepth(model, input_size=side, **common)
        # random weights give NaN depth (seen on an H200): the adapter's compute is timed without the check
        run = (lambda: est(batch)) if args.metric3d_weights else (lambda: est.estimate_scored(batch))
        t = timed(run, args.repeat, sync) / len(batch)
    except Exception as exc:
        row(f"| {name} | - | - | not timed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]} | - | - | - | |")
        return
    mode = "" if args.metric3d_weights else "random weights, output not checked"
    row(f"| {name} | {side[0]}x{side[1]} | {precision} | {mode} | 1 | {t:.3f} | {1 / t:.3f} | |")


def _append(path: Path, device: str, args, argv: list[str], rows: list[str]) -> None:
    """The table under a heading with the device and the date, and the command that made it."""
    shown = [a for i, a in enumerate(argv) if not a.startswith("--results") and (i == 0 or argv[i - 1] != "--results")]
    command = " ".join(["python benchmarks/bench_perception.py", *map(shlex.quote, shown)])
    text = (
        f"## Perception backends on {device} ({datetime.date.today().isoformat()})\n\n`{command}` "
        f"(random weights at the {args.models} architectures, 1600 x 900 images, batch {args.images}, input "
        f"scale {args.scale}; printed by the script)\n\n{HEADER}\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n"
    )
    old = path.read_text() if path.is_file() else ""
    at = old.find("\n## ")  # the newest section first, after the file's introduction
    path.write_text(old + "\n" + text if at < 0 else old[: at + 1] + text + old[at + 1 :])


@torch.inference_mode()
def sam3_per_prompt(seg: Sam3Segmenter, images) -> None:
    """SAM 3 the way one prompt per call runs it: the whole model (vision encoder included) per phrase,
    each image alone; the text features are the adapter's (the text encoder is cheap either way)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    for img in images:
        x = seg.pixels([img])
        for p in range(len(seg.vocab)):
            text = seg.text[p : p + 1]
            seg.model(
                pixel_values=x,
                text_embeds=BaseModelOutputWithPooling(last_hidden_state=text, pooler_output=text),
                attention_mask=seg.text_mask[p : p + 1],
            )


if __name__ == "__main__":
    main()
