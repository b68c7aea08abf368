"""The easyocc code location: the one Definitions (loaded by `dagster dev` via workspace.yaml and by
`dagster asset materialize` via [tool.dagster] in pyproject.toml). Nothing heavy is imported here."""

import dagster as dg

from assets.dataset import dataset
from assets.easyocc_eval import easyocc_eval
from assets.easyocc_model import easyocc_model
from assets.frames import frames
from assets.label_quality import label_quality
from assets.occ3d_export import occ3d_export
from assets.occ_labels import occ_labels
from assets.occ_labels_checks import occ_labels_checks
from assets.perception_maps import perception_maps
from assets.stage_checks import STAGE_CHECKS
from pipelines.jobs import JOBS, SCHEDULES
from pipelines.resources import default_resources

# One process per run (the in-process executor): its steps share one Ray (the cluster at RAY_ADDRESS, or
# one local Ray for the whole run), whose workers keep their compiled kernels from stage to stage. The
# parallelism is inside the steps (Ray actors and tasks), not between them.
defs = dg.Definitions(
    assets=[dataset, frames, perception_maps, occ_labels, label_quality, occ3d_export, easyocc_model, easyocc_eval],
    asset_checks=[occ_labels_checks, *STAGE_CHECKS],
    jobs=JOBS,
    schedules=SCHEDULES,
    resources=default_resources(),
    executor=dg.in_process_executor,
)
