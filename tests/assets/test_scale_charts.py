"""occ_labels' metadata charts of the per-image depth scales: from the ground and from the other views."""
from assets.occ_labels import _range_table, _scale_chart


def test_charts_count_images_per_scale_and_name_why_none_was_applied():
    stats = {"scene-a": [{"view_scales": [1.0, 1.031, 0.95], "view_fits": ["few_points", "applied", "applied"],
                          "ground_scales": [1.0], "ground_fits": ["not_flat"]}],
             "scene-b": [{"view_scales": [1.2], "view_fits": ["applied"]}]}
    views = _scale_chart(stats, "view_scales", "view_fits", "from the window's other views")
    assert views.startswith("3 of 4 images rescaled from the window's other views")
    ground = _scale_chart(stats, "ground_scales", "ground_fits", "from their road pixels")
    assert ground.startswith("0 of 1 images rescaled from their road pixels")
    assert _scale_chart({"scene-c": [{}]}, "view_scales", "view_fits", "x") is None


def test_the_range_table_gives_percentiles_of_the_applied_curves_and_why_others_were_not():
    stats = {"scene-a": [{"range_fit": "applied", "range_factors": {"20 m": 1.0, "40 m": 0.95, "60 m": 0.92}},
                         {"range_fit": "applied", "range_factors": {"20 m": 1.0, "40 m": 0.97, "60 m": 0.96}}],
             "scene-b": [{"range_fit": "unanchored", "range_factors": {}}]}
    table = _range_table(stats)
    assert table.startswith("2 of 3 labels corrected the depth with range") and "unanchored (1)" in table
    assert "| 40 m | 0.952 | 0.960 | 0.968 |" in table
    assert _range_table({"scene-c": [{}]}) is None
