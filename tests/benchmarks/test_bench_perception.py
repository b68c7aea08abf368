"""The perception benchmark runs end to end at tiny sizes on the CPU, so that the GPU command cannot rot:
every backend gets a row, and --results appends the table under a heading with the device and the date."""

import datetime

import torch

from benchmarks import bench_perception


def test_every_backend_is_timed_and_the_table_is_appended(tmp_path):
    from tests.ops.perception.test_metric3d import HUBCONF

    (tmp_path / "metric3d").mkdir()
    (tmp_path / "metric3d" / "hubconf.py").write_text(HUBCONF)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Measured results\n\nIntroduction.\n\n## An older section\n\nold\n")
    rows = bench_perception.main(
        [
            "--models",
            "test",
            "--boxes",
            "2",
            "--skip",
            "sam3_per_phrase",
            "--results",
            str(results),
            "--metric3d-repo",
            str(tmp_path / "metric3d"),
            "--metric3d-variant",
            "vit_small",
        ]
    )
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    names = [c[0] for c in cells]
    assert names == ["grounding-dino (test) + sam (test)"] * 2 + [
        "sam3 (test)",
        "depth_anything_v2 (test)",
        "depth_pro (test)",
        "zoedepth (test)",
        "metric3d (vit_small)",
    ]
    assert all(float(c[6]) > 0 for c in cells)  # images per second
    assert "packed is" in rows[1] and "| fp32 |" in rows[0]
    text = results.read_text()
    assert text.startswith("# Measured results\n\nIntroduction.\n\n## Perception backends on CPU (")  # newest first
    assert text.endswith("## An older section\n\nold\n")
    assert "## Perception backends on CPU (" in text and f"({datetime.date.today().isoformat()})" in text
    assert (
        "`python benchmarks/bench_perception.py --models test --boxes 2" in text
        and "RESULTS.md" not in text.split("`")[1]
    )
    assert all(r in text for r in rows)
    assert torch.is_grad_enabled()  # the caller's autograd is left as it was
    no_metric3d = bench_perception.main(["--models", "test", "--skip", "gsam,sam3,depth"])
    assert no_metric3d == [
        "| metric3d (vit_giant2) | - | - | not timed: its hub code was not given (--metric3d-repo) | - | - | - | |"
    ]
