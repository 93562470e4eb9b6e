"""Admin actions that ask for a reason (and any other input) on an intermediate page, then
apply a service to each selected object; errors of the ApplicationError family are shown,
never raised. Shared by every app's admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from core.audit import Actor
from core.errors import ApplicationError

Action = Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], HttpResponse | None]


def staff_actor(request: HttpRequest) -> Actor:
    return Actor("staff", request.user.get_username())


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)


def form_action(
    *,
    name: str,
    label: str,
    apply: Callable[[Any, dict[str, Any], Actor], Any],
    form_class: type[forms.Form] | None = ReasonForm,
    noun: str = "object",
    describe: Callable[[Any], str] = str,
) -> Action:
    """An admin action: with a form, it first shows the form (and shows it again until it is
    valid); then ``apply(obj, cleaned_data, actor)`` runs for each selected object. Messages
    read ``<describe(obj)>: <error>`` and ``<label>: <n> <noun>(s).``"""

    def action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Model]
    ) -> HttpResponse | None:
        form = form_class(request.POST if "apply" in request.POST else None) if form_class else None
        if form is None or ("apply" in request.POST and form.is_valid()):
            done = 0
            for obj in queryset:
                try:
                    apply(obj, form.cleaned_data if form else {}, staff_actor(request))
                    done += 1
                except ApplicationError as exc:
                    modeladmin.message_user(
                        request, f"{describe(obj)}: {exc.message}", messages.ERROR
                    )
            if done:
                modeladmin.message_user(request, f"{label}: {done} {noun}(s).", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/action_form.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": f"{label}: give a reason",
                "action": name,
                "action_label": label,
                "objects": queryset,
                "form": form,
                "opts": modeladmin.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    action.__name__ = name
    return admin.action(description=f"{label} (asks for a reason)" if form_class else label)(action)
