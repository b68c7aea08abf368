"""Where Dagster keeps the values that assets hand each other: `<data dir>/dagster_storage/<asset>.json`,
typed values (frozen dataclasses) written as JSON (ops/storage/json_values.py) and read back as the
type the consuming asset's parameter names. Unlike pickles, a stored value depends on field names only,
not on the module paths of its classes, and it can be read by a person.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines import settings


class JsonIOManager(dg.ConfigurableIOManager):
    """Asset values as JSON files in the data directory (written atomically)."""

    data_dir: str = ""  # EASYOCC_DATA_DIR; empty = data/ in the repository

    def _path(self, key: dg.AssetKey) -> Path:
        return settings.data_dir(self.data_dir) / "dagster_storage" / ("/".join(key.path) + ".json")

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        from ops.storage.files import write_bytes_atomic
        from ops.storage.json_values import to_json

        write_bytes_atomic(self._path(context.asset_key), to_json(obj).encode())

    def load_input(self, context: dg.InputContext):
        from ops.storage.json_values import from_json

        path = self._path(context.upstream_output.asset_key)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no stored value of asset {context.upstream_output.asset_key.to_user_string()}; "
                f"materialize it first"
            )
        kind = context.dagster_type.typing_type
        if kind in (object, None) or getattr(kind, "__name__", "") == "Any":
            kind = context.upstream_output.dagster_type.typing_type
        return from_json(kind, path.read_text())
