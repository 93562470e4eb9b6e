"""Settings the request path reads on every request, kept as plain attributes.

Each ``django.conf.settings.NAME`` goes through ``LazyObject.__getattribute__``, a Python
call, on every access. :class:`HotSettings` copies the settings it names into plain
attributes and copies them again whenever one of them changes (Django's ``setting_changed``
signal, which ``override_settings`` and pytest-django's ``settings`` fixture send), so code
reading them stays correct under tests that change settings.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed


class HotSettings:
    def __init__(self, *names: str, on_change: Any = None) -> None:
        self._names = frozenset(names)
        self._on_change = on_change
        self._load()
        setting_changed.connect(self._changed, weak=False)

    def _load(self) -> None:
        for name in self._names:
            setattr(self, name, getattr(settings, name, None))

    def _changed(self, *, setting: str, **_kwargs: Any) -> None:
        if setting in self._names:
            self._load()
            if self._on_change is not None:
                self._on_change()

    def __getattr__(self, name: str) -> Any:  # only for names not loaded (typing: Any)
        raise AttributeError(f"{name} is not one of this HotSettings' names")
