"""Dagster's versions from ours, so that the UI's "unsynced" means what it says.

code_version   of an asset: the hash of the project code its step runs (ops.storage.fingerprints:
               the named modules and everything of ops/ and kernels/ they import), the same hash
               that the per-scene fingerprints contain. A change in that code marks the asset
               unsynced; a change elsewhere does not.
data_version   of a materialization: a hash of what the value stands for, without timings. For a
               per-scene stage, the fingerprint of every stored scene (and the names of the failed
               ones): a re-run
               that skipped every scene as unchanged has the same data version, so nothing
               downstream turns unsynced; a rebuilt scene with new inputs changes it.
"""

from __future__ import annotations

import warnings

import dagster as dg


def data_version(value) -> dg.DataVersion:
    from ops.storage.fingerprints import fingerprint
    from ops.storage.json_values import to_json
    from ops.storage.plan import StageResult

    if isinstance(value, StageResult):
        # the failed scenes by name only: their causes can carry a pid or a time
        key = [value.stage, {s: o.fingerprint for s, o in sorted(value.scenes.items())}, sorted(value.failed)]
    else:
        key = to_json(value)
    return dg.DataVersion(fingerprint(key))


def versioned(value, output_name: str = "result") -> dg.Output:
    """`value` as the asset's output (of a multi-asset: the output `output_name`), with its data version (a
    beta parameter of Dagster 1.13's Output: its warning is silenced here, where it is chosen knowingly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(value, output_name=output_name, data_version=data_version(value))
