"""occ_labels' metadata charts of the per-image depth scales: from the ground and from the other views."""
from assets.occ_labels import _scale_chart


def test_charts_count_images_per_scale_and_name_why_none_was_applied():
    stats = {"scene-a": [{"view_scales": [1.0, 1.031, 0.95], "view_fits": ["few_points", "applied", "applied"],
                          "ground_scales": [1.0], "ground_fits": ["not_flat"]}],
             "scene-b": [{"view_scales": [1.2], "view_fits": ["applied"]}]}
    views = _scale_chart(stats, "view_scales", "view_fits", "from the window's other views")
    assert views.startswith("3 of 4 images rescaled from the window's other views")
    ground = _scale_chart(stats, "ground_scales", "ground_fits", "from their road pixels")
    assert ground.startswith("0 of 1 images rescaled from their road pixels")
    assert _scale_chart({"scene-c": [{}]}, "view_scales", "view_fits", "x") is None
