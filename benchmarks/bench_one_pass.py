"""Both perception maps from one pass against one pass per map: images per second of the pair through the
stages' own code (`ops.perception.maps.run_map_stages`: Ray Data serving, the driver writing Zarr), side
by side in one process on one local Ray.

    python benchmarks/bench_one_pass.py [--work /tmp/easyocc-one-pass] [--repeat 2]

Two cases:
  - the demo world (2 scenes, 20 keyframes, 320 x 180, 240 images): the simulated segmenter and depth
    (they read the truth files, not the JPEGs: what one pass saves here is a second actor pool and a
    second pass over the scenes);
  - real-size images (a demo world rendered at 1600 x 900, 2 scenes of 2 keyframes, 24 images) through
    Grounded-SAM (grounding-dino-tiny + sam-vit-base) and Depth Anything V2 (small) with RANDOM weights at
    reduced inputs (the detector at 0.333 of its 800 x 1333, SAM at 336, Depth Anything at 168): each
    JPEG is read and decoded once instead of twice, and one actor holds both models.
"two passes" is what the pipeline did before (semantic_maps, then metric_depth, each its own actor pool);
"one pass" is what it does now when both backends run on the same kind of device. Each mode runs
`--repeat` times into a fresh store (force); the table gives the best run (wall time includes starting
the actor pools and loading the models, which a run pays once per pass).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # the repository: the random-weight models of tests/support


def world(work: Path, name: str, **cfg) -> Path:
    from ops.demo_world.generate import DemoWorldConfig, generate_demo_world

    root = work / name
    if not (root / "easyocc_demo.json").exists():
        start = time.time()
        generate_demo_world(root, DemoWorldConfig(**cfg))
        print(f"{name}: generated in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    return root


def random_checkpoints(work: Path) -> tuple:
    """Grounded-SAM (tiny + base) and Depth Anything V2 (small) with random weights, saved as checkpoint folders."""
    from ops.perception.serving import BackendSpec
    from tests.support.random_models import depth_model, grounding_dino, sam

    path = work / "checkpoints"
    if not (path / "dav2" / "config.json").exists():
        (d, dp), (s, sp) = grounding_dino("tiny", image_size=(266, 443)), sam("base", image_size=336)
        for obj, where in ((d, "gd"), (dp, "gd"), (s, "sam"), (sp, "sam")):
            obj.save_pretrained(path / where)
        depth_model("depth_anything_v2", "small").save_pretrained(path / "dav2")
    return (
        BackendSpec(
            "grounded_sam",
            {
                "detector": str(path / "gd"),
                "sam": str(path / "sam"),
                "box_threshold": 0.0,
                "text_threshold": 0.0,
                "max_detections": 20,
                "nms_iou": None,
            },
        ),
        BackendSpec("depth_anything_v2", {"checkpoint": str(path / "dav2"), "input_size": 168}),
    )


def run(root: Path, store_path: Path, seg, dep, one_pass: bool, settings) -> tuple[float, int]:
    """Both maps of every scene into a fresh store; (seconds, images)."""
    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.perception.maps import DEPTH, SEMANTICS, MapStage, map_fingerprint, run_map_stages
    from ops.storage.keyframe_files import keyframes_path, write_keyframes
    from ops.storage.map_encoding import DepthEncoding
    from ops.storage.plan import StagePlan
    from ops.storage.scene_store import SceneStore

    shutil.rmtree(store_path, ignore_errors=True)
    nusc = open_nuscenes(root, "v1.0-mini")
    files = {}
    for s in sorted(x["name"] for x in nusc.scene):
        kfs = scene_keyframes(nusc, s)
        f = keyframes_path(store_path.parent / "frames", s, "0" * 16)
        write_keyframes(f, kfs)
        files[s] = (str(f), sum(len(kf.images) for kf in kfs))
    store = SceneStore(store_path)
    stages = []
    for kind, spec, enc in ((SEMANTICS, seg, None), (DEPTH, dep, DepthEncoding("cm"))):
        plan = StagePlan.make(
            store,
            kind.stage,
            files,
            fingerprint_of=lambda s, k=kind, sp=spec, e=enc: map_fingerprint(k, sp, s, e),
            items_of=lambda s: files[s][1],
            force=True,
        )
        stages.append(MapStage(kind, plan, spec, enc))
    quiet = lambda _: None  # noqa: E731
    start = time.perf_counter()
    for group in [stages] if one_pass else [[st] for st in stages]:
        run_map_stages(group, files, str(root), settings, log=quiet)
    seconds = time.perf_counter() - start
    failed = {st.kind.stage: st.plan.failed for st in stages if st.plan.failed}
    if failed:
        raise SystemExit(f"scenes failed: {failed}")
    return seconds, sum(n for _, n in files.values())


def decode_ms(root: Path) -> tuple[float, int]:
    """Milliseconds to read and decode one of the world's JPEGs (what one pass saves per image), and how many."""
    from ops.data.images import load_rgb

    names = sorted(p.relative_to(root).as_posix() for p in (root / "samples").rglob("*.jpg"))
    load_rgb(root, names[0], None)
    start = time.perf_counter()
    for n in names:
        load_rgb(root, n, None)
    return 1000 * (time.perf_counter() - start) / len(names), len(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/easyocc-one-pass")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cases", default="demo,real", help="comma-separated: demo, real")
    ap.add_argument("--decode-only", action="store_true", help="only the JPEG decode times of the worlds")
    args = ap.parse_args()
    from ops.perception.serving import BackendSpec, RaySettings

    work = Path(args.work)
    settings = RaySettings(num_actors=1, batch_size=6)
    cases = []
    if "demo" in args.cases:
        sim = BackendSpec("simulated", {"preset": "realistic"})
        cases.append(("demo world, simulated perception", "320 x 180", world(work, "demo", keyframes=20), sim, sim))
    if "real" in args.cases:
        seg, dep = random_checkpoints(work)
        cases.append(
            (
                "Grounded-SAM (tiny + base) + Depth Anything V2 (small), random weights, reduced inputs",
                "1600 x 900",
                world(work, "real-size", keyframes=2, image_width=1600, image_height=900),
                seg,
                dep,
            )
        )
    if args.decode_only:
        for name, size, root, _, _ in cases:
            ms, n = decode_ms(root)
            print(f"{name}: reading and decoding one JPEG at {size}: {ms:.1f} ms (mean of {n})")
        return
    print(
        f"{platform.processor() or platform.machine()}, one local Ray, 1 actor per pass, 6 images per backend call; "
        f"best of {args.repeat}"
    )
    print("\n| case | images | two passes (s) | one pass (s) | pair images/s, two passes | one pass | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name, size, root, seg, dep in cases:
        best = {}
        for one in (False, True) * args.repeat:
            t, n = run(root, work / "store" / "easyocc.zarr", seg, dep, one, settings)
            best[one] = min(best.get(one, float("inf")), t)
            print(
                f"{name}: {'one pass' if one else 'two passes'} {t:.1f} s for {n} images", file=sys.stderr, flush=True
            )
        print(
            f"| {name} | {n} at {size} | {best[False]:.1f} | {best[True]:.1f} | {n / best[False]:.2f} | "
            f"{n / best[True]:.2f} | {best[False] / best[True]:.2f}x |",
            flush=True,
        )
    for name, size, root, _, _ in cases:
        ms, n = decode_ms(root)
        print(
            f"\nreading and decoding one JPEG at {size}: {ms:.1f} ms (mean of {n}); one pass does it once per "
            f"image instead of twice",
            flush=True,
        )


if __name__ == "__main__":
    main()
