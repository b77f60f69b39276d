"""COLLATZ_RAY_DASHBOARD: whether an embedded Ray starts its dashboard."""

from __future__ import annotations

import pytest

from collatz_ray.errors import UsageError
from collatz_ray.search.ray.cluster import DASHBOARD_ENV, dashboard_wanted


def test_on_unless_switched_off(monkeypatch):
    monkeypatch.delenv(DASHBOARD_ENV, raising=False)
    assert dashboard_wanted()
    monkeypatch.setenv(DASHBOARD_ENV, "1")
    assert dashboard_wanted()
    monkeypatch.setenv(DASHBOARD_ENV, "0")
    assert not dashboard_wanted()


@pytest.mark.parametrize("value", ["", "no", "false", "2", "\x1b[2J"])
def test_another_value_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(DASHBOARD_ENV, value)
    with pytest.raises(UsageError) as refused:
        dashboard_wanted()
    message = str(refused.value)
    assert message.startswith(f"{DASHBOARD_ENV}=") and "expected 0" in message and "\n" not in message
    assert "\x1b" not in message
