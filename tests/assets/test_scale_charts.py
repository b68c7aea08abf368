"""occ_labels' metadata charts of the per-image depth scales: from the ground and from the other views."""

from assets.occ_labels import _camera_table, _range_table, _scale_chart


def test_charts_count_images_per_scale_and_name_why_none_was_applied():
    stats = {
        "scene-a": [
            {
                "view_scales": [1.0, 1.031, 0.95],
                "view_fits": ["few_points", "applied", "applied"],
                "ground_scales": [1.0],
                "ground_fits": ["not_flat"],
            }
        ],
        "scene-b": [{"view_scales": [1.2], "view_fits": ["applied"]}],
    }
    views = _scale_chart(stats, "view_scales", "view_fits", "from the window's other views")
    assert views.startswith("3 of 4 images rescaled from the window's other views")
    ground = _scale_chart(stats, "ground_scales", "ground_fits", "from their road pixels")
    assert ground.startswith("0 of 1 images rescaled from their road pixels")
    assert _scale_chart({"scene-c": [{}]}, "view_scales", "view_fits", "x") is None


def test_the_range_table_gives_percentiles_of_the_applied_curves_and_why_others_were_not():
    stats = {
        "scene-a": [
            {"range_fit": "applied", "range_factors": {"20 m": 1.0, "40 m": 0.95, "60 m": 0.92}},
            {"range_fit": "applied", "range_factors": {"20 m": 1.0, "40 m": 0.97, "60 m": 0.96}},
        ],
        "scene-b": [{"range_fit": "unanchored", "range_factors": {}}],
    }
    table = _range_table(stats)
    assert table.startswith("2 of 3 labels corrected the depth with range") and "unanchored (1)" in table
    assert "| 40 m | 0.952 | 0.960 | 0.968 |" in table
    assert _range_table({"scene-c": [{}]}) is None


def test_the_camera_table_gives_each_cameras_applied_scales():
    stats = {
        "scene-a": [
            {
                "cameras": ["CAM_FRONT", "CAM_BACK"],
                "view_scales": [1.0, 1.05],
                "view_fits": ["negligible", "applied"],
                "ground_scales": [0.98, 1.0],
                "ground_fits": ["applied", "not_flat"],
            },
            {"cameras": ["CAM_FRONT", "CAM_BACK"], "view_scales": [1.02, 1.07], "view_fits": ["applied", "applied"]},
        ]
    }
    table = _camera_table(stats)
    assert "| CAM_FRONT | 1 of 1 | 0.980 | 0.980 | 0.980 | 1 of 2 | 1.020 | 1.020 | 1.020 |" in table
    assert "| CAM_BACK | 0 of 1 | - | - | - | 2 of 2 | 1.060 | 1.052 | 1.068 |" in table
    assert _camera_table({"scene-c": [{"view_scales": [1.0]}]}) is None
