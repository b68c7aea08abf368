"""Pictures and tables for the UI: a BEV map drawn as seen from above with +x (forward) up and +y (left)
to the left, the highest occupied voxel of each column, grey where nothing was observed; markdown."""

import numpy as np
import pytest

from ops.occ3d import CLASS_COLORS, CLASS_ID, FREE, GRID, UNOBSERVED
from ops.report import (
    Markdown,
    bar_image,
    bev_image,
    class_map_image,
    depth_image,
    histogram_image,
    line_image,
    markdown_image,
    markdown_table,
)


def test_bev_puts_forward_up_and_left_left():
    sem = np.full(GRID.shape, FREE, np.uint8)
    sem[199, 100, 0] = CLASS_ID["car"]  # far ahead (+x), on the centre line
    sem[100, 199, 0] = CLASS_ID["vegetation"]  # far to the left (+y)
    img = bev_image(sem, scale=1)
    assert img.shape == (200, 200, 3)
    assert (img[0, 99] == CLASS_COLORS[CLASS_ID["car"]]).all()  # top row: +x
    assert (img[99, 0] == CLASS_COLORS[CLASS_ID["vegetation"]]).all()  # left column: +y
    assert (img[199, 199] == CLASS_COLORS[FREE]).all()


def test_bev_shows_the_highest_occupied_voxel_and_grey_for_unobserved():
    sem = np.full(GRID.shape, FREE, np.uint8)
    sem[50, 50, 0] = CLASS_ID["driveable_surface"]
    sem[50, 50, 7] = CLASS_ID["vegetation"]  # a crown above the road
    sem[60, 60, :] = UNOBSERVED
    img = bev_image(sem, scale=2)
    assert img.shape == (400, 400, 3)
    r, c = 2 * (199 - 50), 2 * (199 - 50)
    assert (img[r, c] == CLASS_COLORS[CLASS_ID["vegetation"]]).all()
    assert (img[2 * (199 - 60), 2 * (199 - 60)] == (128, 128, 128)).all()
    with pytest.raises(ValueError, match="X, Y, Z"):
        bev_image(np.zeros((4, 4), np.uint8))


def test_maps_charts_and_markdown():
    sem = np.array([[0, 17], [255, 4]], np.uint8)
    rgb = class_map_image(sem)
    assert (rgb[1, 0] == (128, 128, 128)).all() and (rgb[0, 1] == CLASS_COLORS[FREE]).all()
    depth = depth_image(np.array([[0.0, 5.0], [40.0, 80.0]], np.float32))
    assert (depth[0, 0] == 0).all() and depth[1, 1, 0] > depth[0, 1, 0]  # far is brighter
    for picture in (histogram_image(np.arange(18)), bar_image(["a", "b"], [1.0, 2.0]), line_image({"loss": [3, 2, 1]})):
        assert picture.ndim == 3 and picture.dtype == np.uint8
    with pytest.raises(ValueError, match="2 names for 1 values"):
        bar_image(["a", "b"], [1.0])
    md = markdown_image(rgb, "a map")
    assert isinstance(md, Markdown) and md.startswith("![a map](data:image/png;base64,")
    table = markdown_table(["scene", "n"], [["s1", 3], ["s2", None]])
    assert isinstance(table, Markdown) and table.splitlines() == [
        "| scene | n |",
        "|---|---|",
        "| s1 | 3 |",
        "| s2 |  |",
    ]
    with pytest.raises(ValueError, match="2 columns"):
        markdown_table(["a", "b"], [[1]])
