"""The `easyocc` parser on its own (no command runs): every demo-world option explains itself, and
booleans parse as a user types them."""

from dataclasses import fields

import pytest

from ops.demo_world.generate import DemoWorldConfig
from pipelines.cli import build_parser


def test_every_demo_world_option_has_help_and_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo-world", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in fields(DemoWorldConfig):
        assert f.metadata.get("help"), f.name
        assert f"--{f.name.replace('_', '-')}" in text and f"(default: {f.default})" in text


@pytest.mark.parametrize("typed, value", [("false", False), ("no", False), ("0", False), ("True", True), ("yes", True)])
def test_boolean_options_parse_as_typed(typed, value):
    assert build_parser().parse_args(["demo-world", "--ego-body", typed]).ego_body is value


def test_a_boolean_option_rejects_other_words(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo-world", "--ego-body", "maybe"])
    assert "expected true or false, got 'maybe'" in capsys.readouterr().err
