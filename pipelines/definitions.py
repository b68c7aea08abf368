"""The easyocc code location: the one Definitions (loaded by `dagster dev` via workspace.yaml and by
`dagster asset materialize` via [tool.dagster] in pyproject.toml). Nothing heavy is imported here."""
import dagster as dg

from assets.dataset import dataset
from assets.frames import frames
from assets.labels import occ_labels
from assets.perception import metric_depth, semantic_maps
from pipelines.resources import default_resources

all_assets = [dataset, frames, semantic_maps, metric_depth, occ_labels]

demo_job = dg.define_asset_job("easyocc_all", selection=dg.AssetSelection.all(),
                               description="Every asset, from the dataset to the latest stage")

defs = dg.Definitions(assets=all_assets, jobs=[demo_job], resources=default_resources())
