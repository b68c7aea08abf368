"""Jobs and schedules: what runs together, and when it runs by itself."""

import dagster as dg

everything = dg.define_asset_job(
    "easyocc_all",
    selection=dg.AssetSelection.all(),
    description="Every asset: the labels, then the EasyOcc model trained on them and its evaluation",
)
labels_only = dg.define_asset_job(
    "easyocc_labels",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("model"),
    description="The pseudo-labels, their quality and the Occ3D export (no model)",
)
train_model = dg.define_asset_job(
    "train_model",
    selection=dg.AssetSelection.groups("model"),
    description="Train EasyOcc on the stored labels and evaluate it",
)

# The weekly rebuild: occ_labels and everything downstream of it, with its upstream too so that new or
# changed inputs are picked up (unchanged scenes are skipped by their fingerprints, so this is cheap).
_labels = dg.AssetSelection.assets("occ_labels")
rebuild_labels = dg.define_asset_job(
    "rebuild_labels",
    selection=_labels.upstream() | _labels.downstream(),
    description="occ_labels with its inputs and everything downstream",
)
weekly_label_rebuild = dg.ScheduleDefinition(
    name="weekly_label_rebuild",
    job=rebuild_labels,
    cron_schedule="0 3 * * 0",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Sundays 03:00: rebuild the labels (off until switched on)",
)

JOBS = [everything, labels_only, train_model, rebuild_labels]
SCHEDULES = [weekly_label_rebuild]
