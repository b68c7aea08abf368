"""The `occ_labels` asset (docs/method.md, "Fusion"): per keyframe, lift the stored class and depth maps
(each image's depth rescaled from its road pixels, the ego car's body dropped), add the keyframes before
and after it (movables dropped), and weigh every keyframe's hits against its misses -> (200, 200, 16)
semantics + camera mask, stored per scene in the Zarr store.

Its run config is generated from `FusionConfig` (ops/fusion/config.py): every parameter of the method,
with its doc, plus `force`. Scenes fan out as Ray tasks (one writer each, under the scene's write lock:
another run's writer of the same scene is waited for). A scene whose fingerprint (its perception, the
fusion config, the fusion code) is unchanged and whose stored labels are intact is skipped; `force`
redoes everything. Each task checks, under the maps' read locks, that the stored maps are the ones
this run planned with (another run may have rewritten them). A scene that failed here or upstream
does not stop the others: they are stored and handed on downstream, and the failed ones are named in
the metadata and by the `every_scene_stored` check (assets/stage_checks.py), which fails the run. Only when no scene at all has labels does
the asset itself fail.
"""

import time

import dagster as dg

from assets.metadata import metadata
from assets.values import FramesValue, StageResult
from assets.versions import versioned
from ops.fusion.config import FusionConfig
from ops.storage.fingerprints import code_version
from pipelines.resources import RayResource, StorageResource
from pipelines.run_config import run_config_class, to_dataclass

LabelConfig = run_config_class(
    "LabelConfig",
    FusionConfig,
    extra={"force": (bool, False, "redo every scene")},
    doc="The fusion's parameters (FusionConfig), and `force` to redo unchanged scenes.",
)


@dg.asset(
    group_name="labels",
    kinds={"ray", "zarr", "torch"},
    code_version=code_version("ops.fusion.scene"),
    description="3D pseudo-labels per keyframe: (200, 200, 16) Occ3D semantics + camera mask, in Zarr",
)
def occ_labels(
    context: dg.AssetExecutionContext,
    config: LabelConfig,
    frames: FramesValue,
    semantic_maps: StageResult,
    metric_depth: StageResult,
    ray: RayResource,
    storage: StorageResource,
) -> dg.Output[StageResult]:
    from ops.configs import fingerprint_fields
    from ops.fusion.scene import fuse_scenes
    from ops.storage import METRIC_DEPTH, OCC_LABELS, SEMANTIC_MAPS
    from ops.storage.fingerprints import fingerprint
    from ops.storage.plan import StagePlan

    cfg, code = to_dataclass(config, FusionConfig), code_version("ops.fusion.scene")
    plan = StagePlan.make(
        storage.store(on_wait=context.log.warning),
        OCC_LABELS,
        frames.scenes,
        force=config.force,
        failed={**frames.failed, **semantic_maps.failed, **metric_depth.failed},
        fingerprint_of=lambda s: fingerprint(
            semantic_maps.scenes[s].fingerprint,
            metric_depth.scenes[s].fingerprint,
            frames.scenes[s].fingerprint,
            fingerprint_fields(cfg),
            code,
        ),
        items_of=lambda s: frames.scenes[s].n_keyframes,
    )
    context.log.info(plan.summary())
    start, fused = time.time(), {}
    if plan.todo:
        files = {s: frames.scenes[s].keyframes_file for s in plan.todo}  # each task reads its own scene's
        planned = {
            s: {SEMANTIC_MAPS: semantic_maps.scenes[s].fingerprint, METRIC_DEPTH: metric_depth.scenes[s].fingerprint}
            for s in plan.todo
        }
        for scene, result, cause in fuse_scenes(
            ray.connect(),
            str(plan.store.path),
            plan.todo,
            files,
            cfg,
            lock_timeout=storage.lock_timeout,
            skip_if_current=not config.force,
            maps_fingerprints=planned,
        ):
            if result is None:
                plan.fail(scene, cause)
                context.log.error(f"occ_labels: scene {scene} failed: {cause}")
                continue
            if result.skipped:
                plan.unchanged(scene)
                context.log.info(f"occ_labels: scene {scene} was stored by another run meanwhile: unchanged, skipped")
                continue
            fused[scene] = result
            plan.stored(scene, len(result.stats), result.seconds)
            context.log.info(
                f"occ_labels: scene {scene} stored ({len(fused)}/{len(plan.todo)} scenes, "
                f"{time.time() - start:.0f} s)" + (f" on {result.node}" if result.node else "")
            )
    result = plan.result()
    context.add_output_metadata(
        metadata(_label_metadata(result, fused, semantic_maps, metric_depth, time.time() - start))
    )
    if not result.scenes:
        raise dg.Failure(
            "occ_labels: no scene has labels; every one failed: "
            + "; ".join(f"{s}: {e}" for s, e in result.failed.items()),
            metadata={"failed_scenes": dg.MetadataValue.json(result.failed)},
        )
    if result.failed:
        context.log.error(
            f"occ_labels: {len(result.failed)} scene(s) failed, the other {len(result.scenes)} go on "
            f"downstream: " + "; ".join(f"{s}: {e}" for s, e in result.failed.items())
        )
    return versioned(result)


def _label_metadata(
    result: StageResult, fused: dict, semantic_maps: StageResult, metric_depth: StageResult, seconds: float
) -> dict:
    """The scenes table, a class histogram of all labels, seconds per step, and a BEV picture."""
    import numpy as np

    from ops.occ3d import NUM_CLASSES
    from ops.report import Markdown, bar_image, bev_image, histogram_image, markdown_image, markdown_table
    from ops.runtime import count_per_node
    from ops.storage import OCC_LABELS
    from ops.storage.scene_store import SceneStore

    store = SceneStore(result.store)
    stats = {s: fused[s].stats if s in fused else store.read(s, OCC_LABELS)[0]["stats"] for s in result.scenes}
    hist = np.zeros(NUM_CLASSES, np.int64)
    for st in (st for per_scene in stats.values() for st in per_scene):
        for c, n in st["class_voxels"].items():
            hist[int(c)] += n
    meta = {
        "scenes": result.table(
            "keyframes",
            ["points lifted", "voxels labelled", "voxels carved"],
            lambda s: [
                f"{sum(st['points'] for st in stats[s]):,}",
                f"{sum(st['voxels_occupied'] for st in stats[s]):,}",
                f"{sum(st.get('voxels_carved', 0) for st in stats[s]):,}",
            ],
        ),
        "failed_scenes": len(result.failed),
        "failed": markdown_table(["scene", "cause"], [list(kv) for kv in sorted(result.failed.items())])
        if result.failed
        else "none",
        "seconds": round(seconds, 2),
        "store": store.path,
        "class_histogram": markdown_image(histogram_image(hist), "voxels per class, all labels"),
    }
    per_node: dict[str, int] = {}
    for r in fused.values():
        count_per_node(per_node, r.node)
    if per_node:
        meta["scenes_per_node"] = markdown_table(
            ["Ray node", "scenes fused"], [[n, c] for n, c in sorted(per_node.items())]
        )
    for key, scales, fits, source in (
        ("ground_scale", "ground_scales", "ground_fits", "from their road pixels"),
        ("view_scale", "view_scales", "view_fits", "from the window's other views"),
    ):
        chart = _scale_chart(stats, scales, fits, source)
        if chart:
            meta[key] = chart
    cameras = _camera_table(stats)
    if cameras:
        meta["scales_per_camera"] = cameras
    curve = _range_table(stats)
    if curve:
        meta["range_curve"] = curve
    steps = _stage_seconds(semantic_maps, metric_depth, fused)
    if steps:
        meta["stage_seconds"] = Markdown(
            markdown_table(["step", "seconds"], [[k, f"{v:.2f}"] for k, v in steps.items()])
            + "\n\n"
            + markdown_image(bar_image(list(steps), list(steps.values())), "seconds per step")
        )
    if result.scenes:
        first = sorted(result.scenes)[0]
        with store.reading(first, OCC_LABELS) as g:
            sem = g["semantics"][g["semantics"].shape[0] // 2]
        meta["bev_label"] = markdown_image(bev_image(sem), f"{first}, middle keyframe (BEV, +x up)")
    return meta


def _scale_chart(stats: dict, scales_key: str, fits_key: str, source: str) -> str | None:
    """Images per depth scale in 2 % bins, and per reason where none was applied: how far off the depth
    model's scale is, image by image, from the ground (ops/fusion/ground.py: ground_scales, ground_fits)
    or from the other views (ops/fusion/consistency.py: view_scales, view_fits)."""
    from ops.report import Markdown, bar_image, markdown_image

    scales = [
        (sc, fit)
        for per_scene in stats.values()
        for st in per_scene
        for sc, fit in zip(st.get(scales_key, []), st.get(fits_key, []))
    ]
    if not scales:
        return None
    edges = [0.9 + 0.02 * i for i in range(11)]
    names = ["< 0.90"] + [f"{a:.2f}-{b:.2f}" for a, b in zip(edges, edges[1:])] + ["> 1.10"]
    counts = [0] * len(names)
    reasons: dict[str, int] = {}
    for sc, fit in scales:
        if fit != "applied":
            reasons[fit] = reasons.get(fit, 0) + 1
            continue
        counts[sum(sc >= e for e in edges)] += 1
    names += [f"not applied: {r}" for r in sorted(reasons)]
    counts += [reasons[r] for r in sorted(reasons)]
    applied = len(scales) - sum(reasons.values())
    return Markdown(
        f"{applied} of {len(scales)} images rescaled {source}\n\n"
        + markdown_image(bar_image(names, counts, unit="images"), f"images per depth scale {source}")
    )


def _camera_table(stats: dict) -> str | None:
    """Per camera, over every label's own images (stats: cameras, ground_scales / ground_fits, view_scales /
    view_fits): how many images each correction rescaled and the median, 10th and 90th percentile of the
    scales applied, and a chart of each camera's median scale from the other views (each image's depth is
    divided by its scale): a camera whose depth model is off in every keyframe (one with another focal
    length) stands out here."""
    import numpy as np

    from ops.report import Markdown, bar_image, markdown_image, markdown_table

    per: dict[str, dict[str, list]] = {}
    for st in (st for per_scene in stats.values() for st in per_scene):
        for key in ("ground", "view"):
            for cam, sc, fit in zip(st.get("cameras", []), st.get(f"{key}_scales", []), st.get(f"{key}_fits", [])):
                per.setdefault(cam, {"ground": [], "view": []})[key].append((sc, fit))
    if not per:
        return None

    def cells(pairs):
        applied = [sc for sc, fit in pairs if fit == "applied"]
        q = [f"{np.percentile(applied, p):.3f}" for p in (50, 10, 90)] if applied else ["-"] * 3
        return [f"{len(applied)} of {len(pairs)}"] + q

    rows = [[cam] + cells(d["ground"]) + cells(d["view"]) for cam, d in per.items()]
    table = markdown_table(
        ["camera", "ground: rescaled", "median", "p10", "p90", "other views: rescaled", "median", "p10", "p90"], rows
    )
    medians = {
        cam: float(np.median([sc for sc, fit in d["view"] if fit == "applied"] or [1.0])) for cam, d in per.items()
    }
    names = [f"{cam} ({'+' if m >= 1 else '-'})" for cam, m in medians.items()]
    chart = bar_image(names, [abs(m - 1) * 100 for m in medians.values()], unit="%")
    return Markdown(
        f"{table}\n\n"
        + markdown_image(
            chart,
            "each camera's median scale from the window's other views, % off 1 (+: its depth read long and was "
            "shortened, -: read short and was lengthened)",
        )
    )


def _range_table(stats: dict) -> str | None:
    """The consistency's depth factor with range (ops/fusion/consistency.py: range_fit, range_factors): per
    reported range, the 10th, 50th and 90th percentile over the labels that applied one (a factor below 1:
    the depth model put far surfaces too far, and the labels brought them nearer), and how many did not."""
    import numpy as np

    from ops.report import Markdown, markdown_table

    labels = [st for per_scene in stats.values() for st in per_scene if "range_fit" in st]
    if not labels:
        return None
    applied = [st["range_factors"] for st in labels if st["range_fit"] == "applied" and st.get("range_factors")]
    reasons: dict[str, int] = {}
    for st in labels:
        if st["range_fit"] != "applied":
            reasons[st["range_fit"]] = reasons.get(st["range_fit"], 0) + 1
    rows = [
        [d] + [f"{np.percentile([a[d] for a in applied], q):.3f}" for q in (10, 50, 90)]
        for d in (applied[0] if applied else {})
    ]
    text = (
        f"{len(applied)} of {len(labels)} labels corrected the depth with range (the factor each depth was "
        "divided by, at three ranges)"
    )
    if reasons:
        text += "; not applied: " + ", ".join(f"{r} ({n})" for r, n in sorted(reasons.items()))
    return Markdown(text + ("\n\n" + markdown_table(["range", "p10", "median", "p90"], rows) if rows else ""))


def _stage_seconds(semantic_maps: StageResult, metric_depth: StageResult, fused: dict) -> dict:
    """Seconds per step for the scenes computed in these runs: the perception stages (summed over the
    scenes they stored, whenever that was) and the fusion steps of this run, summed over scenes."""
    out = {}
    for stage in (semantic_maps, metric_depth):
        secs = [o.seconds for o in stage.scenes.values() if o.seconds is not None]
        if secs:
            out[stage.stage] = round(sum(secs), 2)
    for r in fused.values():
        for k, v in r.step_seconds.items():
            out[f"fusion: {k}"] = round(out.get(f"fusion: {k}", 0.0) + v, 2)
    return out
