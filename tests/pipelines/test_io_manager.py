"""The values assets hand each other are stored as JSON in the data dir and read back as the type the
consuming asset names; a value that was never stored is an error naming the asset."""

import json
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pytest

from pipelines.io_manager import JsonIOManager


@dataclass(frozen=True)
class Made:
    name: str
    pose: np.ndarray
    sizes: tuple[int, ...] = ()


@dg.asset
def upstream() -> Made:
    return Made("a", np.eye(4) * 0.1, (1, 2))


@dg.asset
def downstream(upstream: Made) -> Made:
    assert isinstance(upstream, Made) and isinstance(upstream.sizes, tuple)
    return Made(upstream.name + "b", upstream.pose * 2, upstream.sizes)


def test_values_go_through_json_files(tmp_path):
    io = JsonIOManager(data_dir=str(tmp_path))
    result = dg.materialize([upstream, downstream], resources={"io_manager": io})
    assert result.success
    stored = tmp_path / "dagster_storage" / "upstream.json"
    assert json.loads(stored.read_text())["name"] == "a"
    out = result.output_for_node("downstream")
    assert out.name == "ab" and np.array_equal(out.pose, np.eye(4) * 0.2)
    again = dg.materialize([upstream, downstream], selection=["downstream"], resources={"io_manager": io})
    read_back = again.output_for_node("downstream")  # its input read from upstream.json
    assert read_back.name == "ab" and read_back.sizes == (1, 2) and np.array_equal(read_back.pose, out.pose)


def test_a_missing_value_names_its_asset(tmp_path):
    with pytest.raises(Exception, match="no stored value of asset upstream"):
        dg.materialize(
            [upstream, downstream],
            selection=["downstream"],
            resources={"io_manager": JsonIOManager(data_dir=str(tmp_path))},
        )
