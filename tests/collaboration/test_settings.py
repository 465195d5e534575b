"""The ``[collaboration]`` settings: working-day deadlines and the calendar's days, from TOML or the environment."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from yidi_runtime.config import ConfigError, load_settings


def test_deadlines_and_calendar_days_come_from_toml_and_the_environment_overrides_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        '[collaboration]\nanswer_working_days = 3\nholidays = ["2026-10-01", "2026-10-02"]\n'
        'working_weekends = ["2026-10-10"]\n',
        encoding="utf-8",
    )
    settings = load_settings(path, environ={"YIDI_COLLABORATION_CLOSE_WORKING_DAYS": "7"})
    assert (settings.collaboration_answer_working_days, settings.collaboration_close_working_days) == (3, 7)
    assert settings.collaboration_holidays == {date(2026, 10, 1), date(2026, 10, 2)}
    assert settings.collaboration_working_weekends == {date(2026, 10, 10)}
    overridden = load_settings(path, environ={"YIDI_COLLABORATION_HOLIDAYS": "2027-01-01"})
    assert overridden.collaboration_holidays == {date(2027, 1, 1)}


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("YIDI_COLLABORATION_ANSWER_WORKING_DAYS", "0", "YIDI_COLLABORATION_ANSWER_WORKING_DAYS"),
        ("YIDI_COLLABORATION_HOLIDAYS", "2026-10-01,1 October", "YIDI_COLLABORATION_HOLIDAYS"),
    ],
)
def test_a_bad_value_names_its_key(variable: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={variable: value})
    assert raised.value.key == key
