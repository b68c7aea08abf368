"""The `easyocc` command line.

easyocc score --pred PRED_DIR --gt GT_DIR [--json OUT.json] [--split mini_val | --scenes a,b] [--allow-missing]
              [--dataroot DIR --version v1.0-trainval]   (with a dataroot: RayIoU too)
easyocc demo-world [--dataroot DIR] [--seed 0] [--keyframes 20] [--force]
easyocc perceive --scene NAME [--dataroot DIR] [--segmenter NAME] [--depth NAME]   (default: the pipeline's, from the env)
                 [--seg-opt KEY=VALUE ...] [--depth-opt KEY=VALUE ...] [--keyframes 0:1] [--ray] --out DIR
easyocc summary [--data-dir DIR]      what the last runs stored: label quality, model scores, where things are
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from pipelines.settings import DEMO_VERSION, demo_world_root


def _split_scenes(split: str) -> list[str]:
    from nuscenes.utils.splits import create_splits_scenes

    splits = create_splits_scenes()
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; nuscenes-devkit knows {sorted(splits)}")
    return list(splits[split])


def cmd_score(args: argparse.Namespace) -> int:
    from ops.evaluation.conventions import convention_values, format_conventions
    from ops.evaluation.scoring import score_directories
    from ops.evaluation.tables import format_table

    scenes = None
    if args.split and args.scenes:
        raise ValueError("give --split or --scenes, not both")
    if args.split:
        scenes = _split_scenes(args.split)
        present = {p.name for p in Path(args.gt).iterdir() if p.is_dir()} if Path(args.gt).is_dir() else set()
        scenes = [s for s in scenes if s in present] or scenes
    elif args.scenes:
        scenes = [s for s in args.scenes.split(",") if s]
    start = time.time()
    result = score_directories(
        args.pred,
        args.gt,
        scenes=scenes,
        allow_missing=args.allow_missing,
        workers=args.workers,
        origins_of=_origins(args.dataroot, args.version) if args.dataroot else None,
    )
    seconds = time.time() - start
    result["conventions"] = convention_values(result, result.get("rayiou"))
    print(format_table(result))
    print()
    print("every convention side by side:")
    print(format_conventions(result["conventions"]))
    if result.get("rayiou"):
        r = result["rayiou"]
        print(f"RayIoU over {r['frames']} frames, {r['rays']:,} rays")
    elif args.dataroot:
        print(f"RayIoU: no scored frame is a keyframe of {args.dataroot} ({args.version})")
    else:
        print("RayIoU: give --dataroot (and --version) for the rays' origins")
    if result["skipped"]:
        print(f"skipped (missing from predictions): {result['skipped']} frame(s)")
    voxels = result["masks"]["none"]["voxels"]
    print(
        f"scored {result['frames']} frames, {voxels} voxels in {seconds:.2f} s ({voxels / max(seconds, 1e-9) / 1e6:.1f} M voxels/s)"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(_json_safe(result), indent=2, sort_keys=True, allow_nan=False))
        print(f"wrote {args.json}")
    return 0


def _origins(dataroot: str, version: str):
    """origins_of(scene, token) for RayIoU: each keyframe's ray origins from the dataroot's tables
    (poses and LIDAR_TOP calibration), read once per scene; None for a frame the tables do not have."""
    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.evaluation.rayiou import scene_origins

    nusc = open_nuscenes(dataroot, version)
    names = {s["name"] for s in nusc.scene}
    cache: dict[str, dict] = {}

    def origins_of(scene: str, token: str):
        if scene not in names:
            return None
        if scene not in cache:
            cache[scene] = scene_origins(scene_keyframes(nusc, scene))
        return cache[scene].get(token)

    return origins_of


def _json_safe(obj):
    """NaN (a class absent from truth and prediction) becomes null: JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def cmd_demo_world(args: argparse.Namespace) -> int:
    from ops.demo_world.generate import DemoWorldConfig, generate_demo_world

    overrides = {
        f.name: getattr(args, f.name) for f in fields(DemoWorldConfig) if getattr(args, f.name, None) is not None
    }
    cfg = DemoWorldConfig(**overrides)
    root = Path(args.dataroot) if args.dataroot else demo_world_root()
    info = generate_demo_world(root, cfg, force=args.force, log=lambda m: print(m, flush=True))
    print(json.dumps({k: info[k] for k in ("scenes", "samples", "files", "bytes")}, indent=1))
    return 0


def _options(pairs: list[str] | None) -> dict:
    """KEY=VALUE pairs; a VALUE that parses as JSON (numbers, true, lists, {...}) is taken as such."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"backend option {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_perceive(args: argparse.Namespace) -> int:
    """Run a segmenter and a depth backend over a scene's camera images; write maps and previews."""
    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.perception.serving import BackendSpec
    from pipelines.resources import PERCEPTION_VARIABLES, PerceptionResource
    from pipelines.settings import env_value

    root = Path(args.dataroot or env_value("EASYOCC_DATAROOT") or demo_world_root())
    # the environment's version goes with the environment's dataroot, not with one given here
    version = args.version or (env_value("EASYOCC_VERSION") if not args.dataroot else "") or DEMO_VERSION
    kfs = scene_keyframes(open_nuscenes(root, version), args.scene)
    start, _, stop = args.keyframes.partition(":")
    kfs = kfs[int(start or 0) : int(stop) if stop else None]
    images = [im for kf in kfs for im in kf.images]
    # the pipeline's backends and options (EASYOCC_SEGMENTER, ..._OPTIONS), unless the flags say otherwise
    env = PerceptionResource(**{f: env_value(v) for f, v in PERCEPTION_VARIABLES.items()})
    specs = {}
    for role, name, pairs in (("segmenter", args.segmenter, args.seg_opt), ("depth", args.depth, args.depth_opt)):
        base = env.spec(role) if not name or name == (getattr(env, role) or "simulated") else BackendSpec(name, {})
        specs[role] = BackendSpec(base.name, {**base.options, **_options(pairs)})
    seg, dep = specs["segmenter"], specs["depth"]
    t0 = time.perf_counter()
    results = (
        _perceive_on_ray(root, images, seg, dep, args) if args.ray else _perceive_here(root, images, seg, dep, args)
    )
    seconds = time.perf_counter() - t0
    acc, absrel = _write_maps(root, images, results, Path(args.out))
    print(
        f"{len(images)} images of {args.scene} in {seconds:.1f} s ({len(images) / max(seconds, 1e-9):.2f} images/s); "
        f"maps and previews in {args.out}"
    )
    if acc:
        import numpy as np

        print(
            f"against the per-image truth: class accuracy {100 * np.mean(acc):.1f} %, depth AbsRel {np.nanmean(absrel):.3f}"
        )
    return 0


def _perceive_on_ray(root, images, seg, dep, args) -> dict:
    from ops.perception.serving import RaySettings, run_perception

    return run_perception(root, images, seg, dep, RaySettings(batch_size=args.batch_size))


def _perceive_here(root, images, seg, dep, args) -> dict:
    """In this process, batch by batch (the same actor class Ray serves with)."""
    from ops.perception.serving import PerceptionActor

    actor = PerceptionActor(str(root), seg, dep)
    results = {}
    for i in range(0, len(images), args.batch_size):
        part = images[i : i + args.batch_size]
        rows = actor(
            {
                "name": [im.filename for im in part],
                "height": [im.height for im in part],
                "width": [im.width for im in part],
                "K": [im.K.reshape(9) for im in part],
            }
        )
        for j, name in enumerate(rows["name"]):
            if rows["error"][j]:
                raise ValueError(f"{name}: {rows['error'][j]}")
            results[name] = {k: rows[k][j] for k in MAP_FIELDS if k in rows and rows[k][j].size}
        print(f"{min(i + args.batch_size, len(images))}/{len(images)} images", flush=True)
    return results


MAP_FIELDS = ("semantics", "depth", "semantics_confidence", "depth_confidence")  # what a map file holds


def _write_maps(root: Path, images, results: dict, out: Path) -> tuple[list, list]:
    """<out>/<image path>.npz (the maps, and the backends' confidences where they give them) and .png per
    image; (class accuracy, depth AbsRel) per image with a truth file."""
    import numpy as np

    from ops.data.truth import load_truth, truth_file
    from ops.report import class_map_image, depth_image, png_bytes, side_by_side
    from ops.storage.files import save_npz, write_bytes_atomic

    acc, absrel = [], []
    for im in images:
        r = results[im.filename]
        base = im.filename.rsplit(".", 1)[0]
        save_npz(out / f"{base}.npz", **{k: r[k] for k in MAP_FIELDS if k in r})
        write_bytes_atomic(
            out / f"{base}.png", png_bytes(side_by_side([class_map_image(r["semantics"]), depth_image(r["depth"])]))
        )
        if truth_file(root, im.filename).is_file():
            td, ts = load_truth(root, im.filename)
            acc.append(float((r["semantics"] == ts).mean()))
            ok = (td > 0) & (r["depth"] > 0)
            absrel.append(float(np.mean(np.abs(r["depth"][ok] / td[ok] - 1))) if ok.any() else float("nan"))
    return acc, absrel


def summary_lines(data: Path) -> list[str]:
    """What the assets' stored values (<data dir>/dagster_storage/*.json) say, in a few lines."""
    from assets.values import EvalValue, ExportValue, ModelValue, QualityValue, StageResult
    from ops.storage.json_values import from_json

    def value(name, cls):
        path = data / "dagster_storage" / f"{name}.json"
        return from_json(cls, path.read_text()) if path.is_file() else None

    def scores(q: dict, rays: dict | None = None) -> str:
        cam = q["masks"]["camera"]
        ray = f", RayIoU {100 * rays['rayiou']:.2f}" if rays else ""
        return (
            f"mIoU-17 {100 * cam['miou17']:.2f}, mIoU-15 {100 * cam['miou15']:.2f}, IoU {100 * cam['geometric_iou']:.2f} "
            f"(camera mask, {q['frames']} frames){ray}"
        )

    labels, quality = value("occ_labels", StageResult), value("label_quality", QualityValue)
    export, model, ev = (
        value("occ3d_export", ExportValue),
        value("easyocc_model", ModelValue),
        value("easyocc_eval", EvalValue),
    )
    if labels is None:
        return [f"easyocc: nothing stored yet in {data} (run `make demo`)"]
    keyframes = sum(o.items for o in labels.scenes.values())
    lines = [
        f"labels        {keyframes} keyframes of {len(labels.scenes)} scene(s) in {labels.store}"
        + (f"; FAILED: {', '.join(sorted(labels.failed))}" if labels.failed else "")
    ]
    for name, cause in sorted(labels.failed.items()):
        lines.append(f"  {name}: {cause}")
    if quality is not None:
        lines.append(
            f"label quality {scores(quality.all, quality.rayiou)}"
            if quality.all["frames"]
            else "label quality no Occ3D truth to score against"
        )
    if model is not None:
        lines.append(
            f"model         {model.checkpoint} (step {model.steps}, {len(model.train_scenes)} training scene(s))"
        )
    if ev is not None and ev.model["frames"]:
        lines.append(f"model score   {scores(ev.model, ev.model.get('rayiou'))} on {', '.join(ev.scenes)}")
        if ev.baseline and ev.baseline["frames"]:
            lines.append(
                f"  baseline    {scores(ev.baseline, ev.baseline.get('rayiou'))} (most common class per height)"
            )
    if export is not None:
        lines.append(f"Occ3D export  {export.path} ({export.frames} frames)")
    lines.append(
        "the UI        `make ui`, then http://127.0.0.1:3000 (or the port set with UI_PORT): every asset's "
        "metadata, pictures and checks"
    )
    return lines


def cmd_summary(args: argparse.Namespace) -> int:
    from pipelines.settings import data_dir

    print("\n".join(summary_lines(data_dir(args.data_dir or ""))))
    return 0


def _yes_no(text: str) -> bool:
    """A command-line boolean: true/false, yes/no, 1/0 (bool("false") would be True)."""
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="easyocc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score Occ3D-layout predictions against ground truth (every convention)")
    s.add_argument("--pred", required=True, help="predictions: <dir>/<scene>/<token>/labels.npz with 'semantics'")
    s.add_argument("--gt", required=True, help="ground truth in the same layout, with mask_camera and mask_lidar")
    s.add_argument("--json", help="also write the table as JSON here")
    s.add_argument("--split", help="only scenes of this nuscenes-devkit split (e.g. val, mini_val)")
    s.add_argument("--scenes", help="only these scenes (comma separated)")
    s.add_argument("--allow-missing", action="store_true", help="skip frames missing from --pred (and count them)")
    s.add_argument("--workers", type=int, default=4, help="threads reading files")
    s.add_argument(
        "--dataroot", help="the nuScenes dataroot of these frames: also RayIoU (its poses and lidar give the rays)"
    )
    s.add_argument("--version", default="v1.0-trainval", help="its table version (with --dataroot)")
    s.set_defaults(func=cmd_score)
    d = sub.add_parser("demo-world", help="generate the demo world (nuScenes format, exact Occ3D truth)")
    d.add_argument("--dataroot", help="where to write it (default: $EASYOCC_DATA_DIR/demo_world)")
    d.add_argument("--force", action="store_true", help="regenerate even if a complete one exists")
    from ops.demo_world.generate import DemoWorldConfig

    for f in fields(DemoWorldConfig):
        kind = _yes_no if isinstance(f.default, bool) else type(f.default)
        d.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=kind,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata.get('help', '')} (default: {f.default})",
        )
    d.set_defaults(func=cmd_demo_world)
    q = sub.add_parser("perceive", help="run perception backends over a scene's camera images (maps + previews)")
    q.add_argument(
        "--dataroot", help="nuScenes dataroot (default: $EASYOCC_DATAROOT, else the demo world in $EASYOCC_DATA_DIR)"
    )
    q.add_argument(
        "--version", help=f"its table version (default: $EASYOCC_VERSION with $EASYOCC_DATAROOT, else {DEMO_VERSION})"
    )
    q.add_argument("--scene", required=True)
    q.add_argument("--keyframes", default="0:1", help="a slice of the scene's keyframes, e.g. 0:3 or 5: (default 0:1)")
    q.add_argument(
        "--segmenter",
        help="segmenter backend by registry name (default: $EASYOCC_SEGMENTER with "
        "$EASYOCC_SEGMENTER_OPTIONS, else simulated)",
    )
    q.add_argument(
        "--depth",
        help="depth backend by registry name (default: $EASYOCC_DEPTH with $EASYOCC_DEPTH_OPTIONS, else simulated)",
    )
    q.add_argument(
        "--seg-opt",
        action="append",
        help="segmenter option KEY=VALUE (repeatable, over the environment's), e.g. preset=perfect",
    )
    q.add_argument(
        "--depth-opt",
        action="append",
        help="depth option KEY=VALUE (repeatable, over the environment's), e.g. checkpoint=DIR",
    )
    q.add_argument("--batch-size", type=int, default=6)
    q.add_argument("--ray", action="store_true", help="serve on Ray (RAY_ADDRESS or a local Ray) instead of in-process")
    q.add_argument("--out", required=True, help="writes <out>/<image path>.npz (semantics, depth) and .png previews")
    q.set_defaults(func=cmd_perceive)
    m = sub.add_parser("summary", help="what the last runs stored: label quality, model scores, where things are")
    m.add_argument("--data-dir", help="the data directory (default: $EASYOCC_DATA_DIR, else data/)")
    m.set_defaults(func=cmd_summary)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, RuntimeError) as exc:
        print(f"easyocc {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
