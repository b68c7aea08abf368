"""The easyocc code location: the one Definitions (loaded by `dagster dev` via workspace.yaml and by
`dagster asset materialize` via [tool.dagster] in pyproject.toml). Nothing heavy is imported here."""
import dagster as dg

from assets.dataset import dataset
from assets.frames import frames
from assets.labels import occ_labels
from assets.model import easyocc_eval, easyocc_model
from assets.perception import metric_depth, semantic_maps
from assets.quality import label_quality, occ3d_export, occ_labels_checks
from pipelines.resources import default_resources

all_assets = [dataset, frames, semantic_maps, metric_depth, occ_labels, label_quality, occ3d_export,
              easyocc_model, easyocc_eval]

demo_job = dg.define_asset_job("easyocc_all", selection=dg.AssetSelection.all(),
                               description="Every asset: the labels, then the EasyOcc model trained on them and its evaluation")
labels_job = dg.define_asset_job("easyocc_labels", selection=dg.AssetSelection.all() - dg.AssetSelection.groups("model"),
                                 description="The pseudo-labels, their quality and the Occ3D export (no model)")
model_job = dg.define_asset_job("train_model", selection=dg.AssetSelection.groups("model"),
                                description="Train EasyOcc on the stored labels and evaluate it")

# The weekly rebuild: occ_labels and everything downstream of it, with its upstream too so that new or
# changed inputs are picked up (unchanged scenes are skipped by their fingerprints, so this is cheap).
labels = dg.AssetSelection.assets("occ_labels")
rebuild_job = dg.define_asset_job("rebuild_labels", selection=labels.upstream() | labels.downstream(),
                                  description="occ_labels with its inputs and everything downstream")
weekly_rebuild = dg.ScheduleDefinition(name="weekly_label_rebuild", job=rebuild_job, cron_schedule="0 3 * * 0",
                                       default_status=dg.DefaultScheduleStatus.STOPPED,
                                       description="Sundays 03:00: rebuild the labels (off until switched on)")

defs = dg.Definitions(assets=all_assets, asset_checks=[occ_labels_checks], jobs=[demo_job, labels_job, model_job, rebuild_job],
                      schedules=[weekly_rebuild], resources=default_resources())
