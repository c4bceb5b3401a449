"""The record cap setting of package databases."""

from __future__ import annotations

import pytest

from scanning.analyzers.records import max_db_records
from scanning.errors import ConfigError


def test_record_cap_defaults_to_200000(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAX_DB_RECORDS", raising=False)
    assert max_db_records() == 200_000


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_record_cap_below_one_or_not_a_number_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MAX_DB_RECORDS", value)
    with pytest.raises(ConfigError, match="MAX_DB_RECORDS"):
        max_db_records()
