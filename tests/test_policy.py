"""The policy file: the shipped one loads; a bad one fails with a message naming the field."""

from pathlib import Path

import pytest

from flywheel.signals.policy import DEFAULT_POLICY, PolicyError, load_policy


def test_the_shipped_policy_loads_with_its_overrides():
    policy = load_policy()
    assert policy.version and DEFAULT_POLICY.exists()
    assert policy.for_scenario("code_review").max_level == "assist"
    assert policy.for_scenario("unknown").max_level is None
    assert policy.demotion.accept_floor < policy.promotion.accept_target


@pytest.mark.parametrize("text, field", [
    ("version: x\npromotion:\n  accept_target: 1.5\n", "promotion.accept_target"),
    ("version: x\npromotion:\n  min_reviewd: 10\n", "promotion.min_reviewd"),
    ("version: x\nscenarios:\n  a:\n    max_level: full\n", "scenarios.a.max_level"),
    ("promotion: {}\n", "version"),
    ("version: x\ndemotion:\n  accept_floor: 0.95\n", "accept_floor must be below promotion.accept_target"),
    ("version: x\nscenarios:\n  a:\n    max_level: shadow\n    min_level: gated\n", "scenarios.a: min_level is above max_level"),
    ("version: [unclosed\n", "not valid YAML"),
    ("- a list\n", "must hold a mapping"),
])
def test_a_bad_policy_names_the_field(tmp_path: Path, text: str, field: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert field in str(err.value)


def test_a_missing_policy_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "nope.yaml")
