"""Extension points through which higher apps take part in tenant flows without tenants
importing them (imports point one way: subscriptions -> tenants, never back).

- ``signup_plan_validators``: called with the plan code of a signup; raise
  ``django.core.exceptions.ValidationError`` to refuse it (the subscriptions app checks the
  catalog).
"""

from __future__ import annotations

from collections.abc import Callable

signup_plan_validators: list[Callable[[str], None]] = []


def validate_signup_plan(code: str) -> None:
    for validator in signup_plan_validators:
        validator(code)
