"""The Dagster run configs are generated from the config dataclasses: the same fields, defaults and docs,
and a run's values come back as the dataclass (the default run config gives the default FusionConfig;
training fields a run leaves unset keep the preset's values)."""

import dataclasses

import dagster as dg
import pytest

from assets.easyocc_model import ModelConfig
from assets.occ_labels import LabelConfig
from ops.configs import field_doc, fingerprint_fields
from ops.fusion.config import FusionConfig
from ops.model.config import TrainConfig, train_preset
from pipelines.run_config import overrides_of, to_dataclass


def test_label_config_has_every_fusion_field_with_its_default_and_doc():
    fields = LabelConfig.model_fields
    assert list(fields) == [f.name for f in dataclasses.fields(FusionConfig)] + ["force"]
    for f in dataclasses.fields(FusionConfig):
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        assert fields[f.name].default == default and fields[f.name].description == field_doc(f) != ""
    assert to_dataclass(LabelConfig(), FusionConfig) == FusionConfig()
    cfg = to_dataclass(LabelConfig(history=2, movable_classes=[4], fill_step=None), FusionConfig)
    assert cfg == FusionConfig(history=2, movable_classes=(4,), fill_step=None)


def test_fields_that_never_change_a_label_stay_out_of_its_fingerprint():
    assert set(fingerprint_fields(FusionConfig())) == {f.name for f in dataclasses.fields(FusionConfig)} - {
        "device",
        "compile_cpu",
        "backend",
    }
    assert fingerprint_fields(FusionConfig(device="cuda", backend="triton")) == fingerprint_fields(FusionConfig())
    assert set(fingerprint_fields(TrainConfig())) == {f.name for f in dataclasses.fields(TrainConfig)} - {
        "epochs",
        "max_steps",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "device",
        "threads",
        "use_gpu",
    }


def test_model_config_overrides_only_what_a_run_sets():
    assert all(ModelConfig.model_fields[f.name].default is None for f in dataclasses.fields(TrainConfig))
    run = ModelConfig(max_steps=3, decay_epochs=[5, 8])
    over = overrides_of(run, TrainConfig)
    assert over == {"max_steps": 3, "decay_epochs": (5, 8)}
    cfg = train_preset("tiny", **over)
    assert cfg.max_steps == 3 and cfg.decay_epochs == (5, 8) and cfg.epochs == train_preset("tiny").epochs == 20


def test_the_generated_config_is_validated_by_dagster():
    @dg.asset
    def probe(config: LabelConfig) -> int:
        return to_dataclass(config, FusionConfig).history

    ok = dg.materialize([probe], run_config={"ops": {"probe": {"config": {"history": 4}}}})
    assert ok.output_for_node("probe") == 4
    with pytest.raises(dg.DagsterInvalidConfigError, match="histroy"):
        dg.materialize([probe], run_config={"ops": {"probe": {"config": {"histroy": 4}}}})
    bad = dg.materialize(
        [probe], run_config={"ops": {"probe": {"config": {"free_space": "nope"}}}}, raise_on_error=False
    )
    assert (
        not bad.success
        and "free_space must be one of" in bad.get_step_failure_events()[0].event_specific_data.error.to_string()
    )
