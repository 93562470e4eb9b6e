"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``.

``exception_handler`` is DRF's EXCEPTION_HANDLER; ``error_response`` builds the same body for
middleware and Django-level handlers (404/500) that run outside DRF.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    *,
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    response = JsonResponse(error_body(code, message, details), status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_details(detail: Any) -> Any:
    """DRF's nested ErrorDetail structure as lists of ``{"code", "message"}``."""
    if isinstance(detail, dict):
        return {str(key): _field_details(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_field_details(item) for item in detail]
    if isinstance(detail, drf_exceptions.ErrorDetail):
        return {"code": detail.code, "message": str(detail)}
    return {"code": "invalid", "message": str(detail)}


_DRF_CODES: dict[type[drf_exceptions.APIException], str] = {
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.PermissionDenied: "forbidden",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "throttled",
    drf_exceptions.ParseError: "parse_error",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        app_response = Response(
            error_body(exc.code, exc.message, exc.details), status=exc.status_code
        )
        for name, value in exc.headers.items():
            app_response[name] = value
        return app_response
    if isinstance(exc, DjangoValidationError):
        field_errors = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = drf_exceptions.ValidationError(detail=field_errors)
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    handled = drf_exception_handler(exc, context)
    if handled is None or not isinstance(exc, drf_exceptions.APIException):
        return handled
    response: Response = handled

    if isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail
        if not isinstance(detail, dict):
            detail = {"non_field_errors": detail}
        response.data = error_body(
            "validation_error", "The input is not valid.", _field_details(detail)
        )
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response

    code = _DRF_CODES.get(type(exc))
    if code is None:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
    details: dict[str, Any] = {}
    wait = getattr(exc, "wait", None)
    if isinstance(exc, drf_exceptions.Throttled) and wait is not None:
        details["retry_after"] = int(wait)
    response.data = error_body(code, str(exc.detail), details)
    return response


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(status_code=404, code="not_found", message="Not found.")


def json_500(request: HttpRequest) -> JsonResponse:
    return error_response(
        status_code=500, code="server_error", message="An unexpected error occurred."
    )
