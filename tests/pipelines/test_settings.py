"""Settings come from the environment in one place: set variables win, empty means the default, the data
dir has one default, and an unknown name is an error."""

import pytest

from pipelines import settings


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("EASYOCC_DATA_DIR", str(tmp_path / "env"))
    assert settings.data_dir() == tmp_path / "env" and settings.data_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert settings.demo_world_root() == tmp_path / "env" / "demo_world"
    monkeypatch.setenv("EASYOCC_DATA_DIR", "")
    assert settings.data_dir() == settings.REPO_ROOT / "data" and not settings.is_set("EASYOCC_DATA_DIR")


def test_values_and_unknown_names(monkeypatch):
    monkeypatch.setenv("EASYOCC_DEPTH", "metric3d")
    monkeypatch.delenv("EASYOCC_SEGMENTER", raising=False)
    assert settings.env_value("EASYOCC_DEPTH") == "metric3d" and settings.env_value("EASYOCC_SEGMENTER") == ""
    with pytest.raises(KeyError, match="EASYOCC_TYPO is not one of easyocc's settings"):
        settings.is_set("EASYOCC_TYPO")


def test_resources_take_set_variables_as_env_vars(monkeypatch):
    import dagster as dg

    from pipelines.resources import default_resources

    monkeypatch.setenv("EASYOCC_DATAROOT", "/data/nuscenes")
    monkeypatch.delenv("EASYOCC_VERSION", raising=False)
    res = default_resources()["nuscenes"]
    assert isinstance(res.dataroot, dg.EnvVar) and res.version == ""
