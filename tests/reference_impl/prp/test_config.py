"""PRP configuration: defaults, environment, explicit values, one clear error each."""

from __future__ import annotations

import pytest

from reference_impl.errors import ConfigError
from reference_impl.prp import PrpConfig


def test_defaults_keep_todays_behaviour() -> None:
    config = PrpConfig.from_env({})
    assert config == PrpConfig(spool_concurrency=1, spool_max_concurrency=4, approval_batch_size=2)


def test_reads_the_environment_and_explicit_values_win() -> None:
    env = {
        "PRP_SPOOL_CONCURRENCY": "2",
        "PRP_SPOOL_MAX_CONCURRENCY": " 8 ",
        "PRP_APPROVAL_BATCH_SIZE": "3",
    }
    assert PrpConfig.from_env(env) == PrpConfig(2, 8, 3)
    assert PrpConfig.from_env(env, spool_concurrency=5, approval_batch_size=1) == PrpConfig(5, 8, 1)


def test_an_empty_variable_takes_its_default() -> None:
    assert PrpConfig.from_env({"PRP_SPOOL_CONCURRENCY": ""}) == PrpConfig()


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "2e3", "٣", "+3"])
@pytest.mark.parametrize(
    "variable",
    ["PRP_SPOOL_CONCURRENCY", "PRP_SPOOL_MAX_CONCURRENCY", "PRP_APPROVAL_BATCH_SIZE"],
)
def test_a_bad_variable_is_named_with_its_value(variable: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PrpConfig.from_env({variable: text})
    assert caught.value.source == variable
    assert repr(text) in str(caught.value)
    assert str(caught.value).startswith(f"{variable}: expected a positive integer")


@pytest.mark.parametrize("value", [0, -3, True])
def test_a_bad_explicit_value_is_named(value: int) -> None:
    with pytest.raises(ConfigError, match=r"^PRP_APPROVAL_BATCH_SIZE: .*got") as caught:
        PrpConfig(approval_batch_size=value)
    assert caught.value.source == "PRP_APPROVAL_BATCH_SIZE"


def test_a_base_above_the_maximum_names_both() -> None:
    with pytest.raises(ConfigError) as caught:
        PrpConfig.from_env({"PRP_SPOOL_CONCURRENCY": "5"})
    assert caught.value.source == "PRP_SPOOL_CONCURRENCY"
    assert str(caught.value) == (
        "PRP_SPOOL_CONCURRENCY: base concurrency 5 is above PRP_SPOOL_MAX_CONCURRENCY=4"
    )
