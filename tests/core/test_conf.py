from __future__ import annotations

from django.test import override_settings

from core.conf import HotSettings


def test_hot_settings_follow_overrides_and_call_back(settings):
    changes: list[int] = []
    hot = HotSettings("USAGE_CREDIT_MAX", on_change=lambda: changes.append(1))
    settings.USAGE_CREDIT_MAX = 7
    assert hot.USAGE_CREDIT_MAX == 7
    with override_settings(USAGE_CREDIT_MAX=3):
        assert hot.USAGE_CREDIT_MAX == 3
    assert hot.USAGE_CREDIT_MAX == 7
    assert len(changes) == 3
    settings.USAGE_FAIL_MODE = "closed"  # not one of its names
    assert len(changes) == 3
