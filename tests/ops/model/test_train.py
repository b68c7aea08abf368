"""Training: a resumed run repeats the uninterrupted one exactly; bad input and mismatched checkpoints
are clear errors."""

import shutil

import numpy as np
import pytest
import torch

from ops.data.keyframes import scene_keyframes
from ops.model.config import TrainConfig
from ops.model.data import OccDataset, PseudoLabels, camera_projections
from ops.model.train import latest_checkpoint, load_model, train_loop
from tests.support.micro_model import Cropped, micro

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_down")]  # slow: make test-fast leaves it out


@pytest.fixture(scope="module")
def dataset(small_world, small_nusc):
    root, _ = small_world
    kfs = scene_keyframes(small_nusc, "scene-0061")
    return Cropped(OccDataset(root, kfs, (64, 128), PseudoLabels.from_occ3d(root / "gts")))


def test_a_resumed_run_takes_the_identical_next_steps(dataset, tmp_path):
    cfg = TrainConfig(epochs=2, checkpoint_every=3, decay_epochs=(1,), lr_head=3e-3, log_every=100)
    full = train_loop(micro(), cfg, dataset, tmp_path / "full", label_counts=np.arange(1, 19), log=lambda m: None)
    assert len(full.history) == 8 and full.history[-1]["lr_head"] == pytest.approx(3e-4)  # 4 steps per epoch, decayed
    # "killed" after step 3: only the step-3 checkpoint survives, then a new process resumes
    train_loop(
        micro(),
        TrainConfig(**{**cfg.__dict__, "max_steps": 3}),
        dataset,
        tmp_path / "cut",
        np.arange(1, 19),
        log=lambda m: None,
    )
    assert latest_checkpoint(tmp_path / "cut").name == "step-00000003.pt"
    logs = []
    resumed = train_loop(micro(), cfg, dataset, tmp_path / "cut", np.arange(1, 19), log=logs.append)
    assert any("resumed" in m and "step 3" in m for m in logs)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    a, _ = load_model(latest_checkpoint(tmp_path / "full"))
    b, ckpt = load_model(latest_checkpoint(tmp_path / "cut"))
    assert ckpt["step"] == 8
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    # a finished run does nothing more
    again = train_loop(micro(), cfg, dataset, tmp_path / "cut", np.arange(1, 19), log=lambda m: None)
    assert again.step == 8 and len(again.history) == 8


def test_a_checkpoint_of_another_config_is_refused(dataset, tmp_path):
    train_loop(micro(), TrainConfig(max_steps=1), dataset, tmp_path, log=lambda m: None)
    with pytest.raises(ValueError, match="another model config"):
        train_loop(micro(volume_channels=16), TrainConfig(max_steps=2), dataset, tmp_path, log=lambda m: None)
    latest_checkpoint(tmp_path).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable EasyOcc checkpoint"):
        train_loop(micro(), TrainConfig(max_steps=2), dataset, tmp_path, log=lambda m: None)


def test_a_torn_newest_checkpoint_falls_back_to_the_one_before(dataset, tmp_path):
    cfg = TrainConfig(max_steps=2, checkpoint_every=1, keep_checkpoints=3)
    whole = train_loop(micro(), cfg, dataset, tmp_path / "a", log=lambda m: None)
    train_loop(micro(), cfg, dataset, tmp_path / "b", log=lambda m: None)
    newest = latest_checkpoint(tmp_path / "b")
    newest.write_bytes(newest.read_bytes()[:1000])  # a crash in the middle of writing it
    logs = []
    again = train_loop(micro(), cfg, dataset, tmp_path / "b", log=logs.append)
    assert any("skipping unreadable checkpoint" in m for m in logs) and any("at step 1" in m for m in logs)
    assert [h["loss"] for h in again.history] == [h["loss"] for h in whole.history]


def test_a_pretrained_backbone_loads_and_a_checkpoint_needs_no_hub(tmp_path):
    from transformers import ResNetConfig, ResNetModel

    from ops.hub import CheckpointError
    from ops.model.network import EasyOcc

    torch.manual_seed(1)
    saved = ResNetModel(
        ResNetConfig(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic")
    )
    saved.save_pretrained(tmp_path / "resnet18")
    cfg = micro(depth=18, pretrained=str(tmp_path / "resnet18"), widths=(), blocks=())
    model = EasyOcc(cfg)
    for (name, a), b in zip(model.encoder.resnet.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(CheckpointError, match="EasyOcc backbone: no checkpoint at"):
        EasyOcc(micro(depth=18, pretrained=str(tmp_path / "nowhere"), widths=(), blocks=()))
    with pytest.raises(ValueError, match="depth=34 expects"):
        EasyOcc(micro(depth=34, pretrained=str(tmp_path / "resnet18"), widths=(), blocks=()))
    # a checkpoint of it loads with the weights gone from disk (no hub, no folder needed)
    import json

    torch.save(
        {"model": model.state_dict(), "config": json.loads(cfg.to_json()), "step": 0}, tmp_path / "step-00000000.pt"
    )
    shutil.rmtree(tmp_path / "resnet18")
    loaded, _ = load_model(tmp_path / "step-00000000.pt")
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_input_is_named(small_world, small_nusc, tmp_path):
    root, _ = small_world
    kfs = scene_keyframes(small_nusc, "scene-0061")
    # labels missing for one frame
    gts = tmp_path / "gts"
    shutil.copytree(root / "gts" / "scene-0061", gts / "scene-0061")
    shutil.rmtree(gts / "scene-0061" / kfs[1].token)
    with pytest.raises(KeyError, match=f"1 of {len(kfs)} keyframes have no label.*scene-0061/{kfs[1].token}"):
        OccDataset(root, kfs, (64, 128), PseudoLabels.from_occ3d(gts))
    labels = PseudoLabels.from_occ3d(gts)
    assert labels.missing([("scene-0061", kfs[1].token), ("scene-0061", kfs[0].token)]) == [
        f"scene-0061/{kfs[1].token}"
    ]
    assert labels.counts([("scene-0061", kfs[0].token)]).sum() == labels.counts(kfs[:1]).sum() > 0
    # labels missing for a whole scene in the Zarr store
    with pytest.raises(KeyError, match="no label"):
        OccDataset(root, kfs, (64, 128), PseudoLabels.from_store(tmp_path / "empty.zarr"))
    # a camera missing
    broken = scene_keyframes(small_nusc, "scene-0061")[:1]
    broken[0].images = [im for im in broken[0].images if im.channel != "CAM_BACK_LEFT"]
    with pytest.raises(ValueError, match=f"keyframe {broken[0].token}: camera.s. CAM_BACK_LEFT missing"):
        OccDataset(root, broken, (64, 128))
    with pytest.raises(ValueError, match="CAM_BACK_LEFT missing"):
        camera_projections(broken[0], (64, 128))
    # an image missing on disk: the error names the file
    moved = scene_keyframes(small_nusc, "scene-0061")[:1]
    moved[0].images[0].filename = "samples/CAM_FRONT/nowhere.jpg"
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        OccDataset(root, moved, (64, 128))[0]


def test_ray_train_with_two_workers_matches_its_checkpoints(dataset, tmp_path):
    """Ray Train (DDP over gloo, 2 CPU workers): both workers step together, rank 0 checkpoints, and a
    second call resumes from those checkpoints."""
    from ops.model.train import train

    cfg = TrainConfig(max_steps=2, checkpoint_every=1, workers=2, log_every=1)
    state = train(micro(), cfg, lambda: dataset, tmp_path, np.arange(1, 19), log=lambda m: None)
    assert state.step == 2 and len(state.history) == 2  # 4 samples, 2 per step: 2 steps per epoch
    assert [p.name for p in sorted(tmp_path.glob("step-*.pt"))] == ["step-00000001.pt", "step-00000002.pt"]
    more = train(
        micro(),
        TrainConfig(**{**cfg.__dict__, "max_steps": 3}),
        lambda: dataset,
        tmp_path,
        np.arange(1, 19),
        log=lambda m: None,
    )
    assert more.step == 3 and [h["loss"] for h in more.history[:2]] == [h["loss"] for h in state.history]


class _RunsOnLoad:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_a_checkpoint_that_would_run_code_is_refused(dataset, tmp_path, capsys):
    """Checkpoints load with weights_only=True: our own (tensors, plain containers, the RNG states as
    plain values) load; one carrying an arbitrary object is refused before anything of it runs."""
    from ops.model.train import load_checkpoint

    train_loop(micro(), TrainConfig(max_steps=1), dataset, tmp_path / "run", log=lambda m: None)
    ckpt = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert ckpt["step"] == 1 and isinstance(ckpt["rng"]["numpy"][1], list)
    ckpt["extra"] = _RunsOnLoad()
    torch.save(ckpt, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt: not a readable EasyOcc checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert "code ran" not in capsys.readouterr().out
