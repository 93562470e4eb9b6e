"""Stripe's wire formats for tests: JSON builders in the shapes of Stripe's API reference
(https://docs.stripe.com/api), webhook signing with Stripe's scheme, and a small in-memory
Stripe API answered through ``responses`` so that the stripe library, dj-stripe's
retrieve-and-sync path and our gateway send real HTTP requests and parse real bodies.

Written for this project (not copied from dj-stripe's fixtures).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import responses

API_BASE = "https://api.stripe.com"
API_VERSION = "2026-08-26.dahlia"
SECRET_KEY = "sk_test_51TenantryTestKey0123456789abcdefABCDEF"
WEBHOOK_SECRET = "whsec_tenantryTestSigningSecret0123456789"
ACCOUNT_ID = "acct_1TenantryPlatform01"

_counter = itertools.count(1)
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z, the default "created" of built objects


def new_id(prefix: str) -> str:
    return f"{prefix}_T{next(_counter):06d}{'x' * 10}"


def _list(url: str, data: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"object": "list", "data": data or [], "has_more": False, "url": url}


# --- objects (https://docs.stripe.com/api/...) ---------------------------------------------


def account(**overrides: Any) -> dict[str, Any]:
    obj = {
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {
            "mcc": None,
            "name": "Tenantry",
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": NOW - 86400 * 365,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "billing@tenantry.example",
        "external_accounts": _list(f"/v1/accounts/{ACCOUNT_ID}/external_accounts"),
        "future_requirements": {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": [],
            "disabled_reason": None,
            "errors": [],
            "eventually_due": [],
            "past_due": [],
            "pending_verification": [],
        },
        "metadata": {},
        "payouts_enabled": True,
        "requirements": {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": [],
            "disabled_reason": None,
            "errors": [],
            "eventually_due": [],
            "past_due": [],
            "pending_verification": [],
        },
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {
                "icon": None,
                "logo": None,
                "primary_color": None,
                "secondary_color": None,
            },
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": "Tenantry", "timezone": "Etc/UTC"},
            "payments": {
                "statement_descriptor": "TENANTRY",
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
        },
        "tos_acceptance": {"date": NOW - 86400 * 365, "ip": None, "user_agent": None},
        "type": "standard",
    }
    obj.update(overrides)
    return obj


def customer(
    *,
    id: str | None = None,
    tenant_id: int | None = None,
    email: str = "owner@example.com",
    name: str = "Example",
    default_payment_method: str | None = None,
    created: int = NOW,
    **overrides: Any,
) -> dict[str, Any]:
    metadata = {"djstripe_subscriber": str(tenant_id)} if tenant_id is not None else {}
    obj: dict[str, Any] = {
        "id": id or new_id("cus"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": "A1B2C3D4",
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": default_payment_method,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    obj.update(overrides)
    return obj


def deleted_customer(customer_id: str) -> dict[str, Any]:
    return {"id": customer_id, "object": "customer", "deleted": True}


def payment_method(
    *, id: str | None = None, customer: str | None = None, last4: str = "4242", created: int = NOW
) -> dict[str, Any]:
    return {
        "id": id or new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "always",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
        },
        "card": {
            "brand": "visa",
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": "visa",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": "Xt5EWLLDS7FJjR1c",
            "funding": "credit",
            "generated_from": None,
            "last4": last4,
            "networks": {"available": ["visa"], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": created,
        "customer": customer,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def payment_intent(
    *,
    id: str | None = None,
    amount: int = 1000,
    currency: str = "usd",
    customer: str | None = None,
    payment_method: str | None = None,
    status: str = "succeeded",
    last_payment_error: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    latest_charge: str | None = None,
    created: int = NOW,
) -> dict[str, Any]:
    pi_id = id or new_id("pi")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount if status == "succeeded" else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"allow_redirects": "never", "enabled": True},
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_TenantryTest",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": customer,
        "description": None,
        "last_payment_error": last_payment_error,
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": metadata or {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": payment_method,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def card_error(
    *,
    code: str = "card_declined",
    decline_code: str = "insufficient_funds",
    message: str = "Your card has insufficient funds.",
    payment_intent: dict[str, Any] | None = None,
    payment_method: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of a 402 answer (https://docs.stripe.com/api/errors)."""
    error: dict[str, Any] = {
        "code": code,
        "decline_code": decline_code,
        "doc_url": f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}",
        "message": message,
        "request_log_url": "https://dashboard.stripe.com/test/logs/req_TenantryTest",
        "type": "card_error",
    }
    if payment_intent is not None:
        error["payment_intent"] = payment_intent
    if payment_method is not None:
        error["payment_method"] = payment_method
    return {"error": error}


def last_payment_error(
    *, code: str = "card_declined", decline_code: str = "generic_decline", message: str = ""
) -> dict[str, Any]:
    return {
        "code": code,
        "decline_code": decline_code,
        "doc_url": f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}",
        "message": message or "Your card was declined.",
        "type": "card_error",
    }


def resource_missing(kind: str, object_id: str) -> dict[str, Any]:
    return {
        "error": {
            "code": "resource_missing",
            "doc_url": "https://docs.stripe.com/error-codes/resource-missing",
            "message": f"No such {kind}: '{object_id}'",
            "param": "id",
            "request_log_url": "https://dashboard.stripe.com/test/logs/req_TenantryTest",
            "type": "invalid_request_error",
        }
    }


def setup_intent(
    *,
    id: str | None = None,
    customer: str | None = None,
    payment_method: str | None = None,
    status: str = "succeeded",
    created: int = NOW,
) -> dict[str, Any]:
    seti_id = id or new_id("seti")
    return {
        "id": seti_id,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": f"{seti_id}_secret_TenantryTest",
        "created": created,
        "customer": customer,
        "description": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": payment_method,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": status,
        "usage": "off_session",
    }


def checkout_session(
    *,
    id: str | None = None,
    customer: str | None = None,
    setup_intent: str | None = None,
    mode: str = "setup",
    status: str = "complete",
    success_url: str = "https://app.example/billing/done",
    cancel_url: str = "https://app.example/billing",
    client_reference_id: str | None = None,
    metadata: dict[str, str] | None = None,
    created: int = NOW,
) -> dict[str, Any]:
    cs_id = id or new_id("cs_test")
    return {
        "id": cs_id,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": None,
        "amount_total": None,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_creation": None,
        "customer_details": None,
        "customer_email": None,
        "expires_at": created + 86400,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": metadata or {},
        "mode": mode,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "no_payment_required",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "setup_intent": setup_intent,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_details": None,
        "shipping_options": [],
        "status": status,
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "total_details": None,
        "ui_mode": "hosted",
        "url": f"https://checkout.stripe.com/c/pay/{cs_id}#fidkdWxOYHwnPyd1blpxYHZxWjA0"
        if status == "open"
        else None,
    }


def balance_transaction(*, id: str | None = None, amount: int, source: str) -> dict[str, Any]:
    fee = round(amount * 0.029) + 30
    return {
        "id": id or new_id("txn"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": NOW + 86400 * 2,
        "created": NOW,
        "currency": "usd",
        "description": None,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": "usd",
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ],
        "net": amount - fee,
        "reporting_category": "charge",
        "source": source,
        "status": "pending",
        "type": "charge",
    }


def charge(
    *,
    id: str | None = None,
    amount: int = 1000,
    amount_refunded: int = 0,
    customer: str | None = None,
    payment_intent: str | None = None,
    payment_method: str | None = None,
    balance_transaction: str | None = None,
    created: int = NOW,
) -> dict[str, Any]:
    return {
        "id": id or new_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": balance_transaction,
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
        },
        "calculated_statement_descriptor": "TENANTRY",
        "captured": True,
        "created": created,
        "currency": "usd",
        "customer": customer,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": payment_intent,
        "payment_method": payment_method,
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "credit",
                "last4": "4242",
                "network": "visa",
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": "https://pay.stripe.com/receipts/payment/TenantryTest",
        "refunded": amount_refunded >= amount,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(
    *,
    id: str | None = None,
    amount: int,
    charge: str | None,
    payment_intent: str,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": id or new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge,
        "created": NOW,
        "currency": "usd",
        "destination_details": {
            "card": {"reference_status": "pending", "type": "refund"},
            "type": "card",
        },
        "metadata": metadata or {},
        "payment_intent": payment_intent,
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def event(
    type: str,
    obj: dict[str, Any],
    *,
    id: str | None = None,
    created: int | None = None,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A v1 "snapshot" event (https://docs.stripe.com/api/events/object)."""
    data: dict[str, Any] = {"object": copy.deepcopy(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": id or new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


# --- signing (https://docs.stripe.com/webhooks#verify-manually) ------------------------------


def sign(body: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """``Stripe-Signature``: HMAC-SHA256 keyed with the whole secret over ``"<t>.<body>"``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


# --- an in-memory Stripe API -----------------------------------------------------------------

_COLLECTIONS = {
    "customers": "customer",
    "payment_methods": "payment_method",
    "payment_intents": "payment_intent",
    "setup_intents": "setup_intent",
    "checkout/sessions": "checkout.session",
    "charges": "charge",
    "refunds": "refund",
    "balance_transactions": "balance_transaction",
}

Reply = tuple[int, dict[str, str], str]


class FakeStripe:
    """Answers the stripe library's HTTP requests from objects it holds, as Stripe does.

    ``POST`` with an ``Idempotency-Key`` seen before replays the first answer (Stripe's
    idempotency), so a retried create is not done twice here either. ``on_create`` lets a
    test decide how a PaymentIntent confirmation ends (e.g. a 402 card error).
    """

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps
        self.objects: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[str, Reply] = {}
        self.payment_intent_outcome: Callable[[dict[str, Any]], Reply] | None = None
        # (method, path) -> an answer given instead, e.g. a 500 while Stripe has an outage
        self.outages: dict[tuple[str, str], Reply] = {}
        self.put(account())
        pattern = re.compile(re.escape(API_BASE) + r"/v1/.*")
        for method in (responses.GET, responses.POST, responses.DELETE):
            rsps.add_callback(method, pattern, callback=self._answer)

    # objects
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = copy.deepcopy(obj)
        return obj

    def get(self, object_id: str) -> dict[str, Any]:
        return self.objects[object_id]

    # request records
    def requests(self, method: str | None = None, path: str | None = None) -> list[Any]:
        found = []
        for call in self.rsps.calls:
            url = urlsplit(call.request.url)
            if method and call.request.method != method:
                continue
            if path and url.path != path:
                continue
            found.append(call.request)
        return found

    @staticmethod
    def form(request: Any) -> dict[str, str]:
        body = request.body or ""
        if isinstance(body, bytes):
            body = body.decode()
        return dict(parse_qsl(body, keep_blank_values=True))

    # answering
    @staticmethod
    def _reply(status: int, body: dict[str, Any]) -> Reply:
        return status, {"Request-Id": "req_TenantryTest"}, json.dumps(body)

    def _expand(self, obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        for field in expand:
            value = out.get(field)
            if isinstance(value, str) and value in self.objects:
                out[field] = copy.deepcopy(self.objects[value])
        return out

    def outage(self, method: str, path: str) -> None:
        body = {"error": {"message": "An unknown error occurred", "type": "api_error"}}
        self.outages[(method, path)] = self._reply(500, body)

    def _answer(self, request: Any) -> Reply:
        url = urlsplit(request.url)
        if (request.method, url.path) in self.outages:
            return self.outages[(request.method, url.path)]
        path = url.path.removeprefix("/v1/")
        query = parse_qsl(url.query)
        expand = [value for key, value in query if key.startswith("expand")]
        if request.method == "POST":
            key = request.headers.get("Idempotency-Key")
            if key and key in self.idempotent:
                return self.idempotent[key]
            reply = self._post(path, self.form(request))
            if key and reply[0] < 500:
                self.idempotent[key] = reply
            return reply
        if path == "account":
            return self._reply(200, self.objects[ACCOUNT_ID])
        collection, _, object_id = path.rpartition("/")
        kind = _COLLECTIONS.get(collection, collection)
        if request.method == "DELETE":
            if object_id not in self.objects or self.objects[object_id].get("deleted"):
                return self._reply(404, resource_missing(kind, object_id))
            self.objects[object_id] = deleted_customer(object_id)
            return self._reply(200, self.objects[object_id])
        if object_id not in self.objects:
            return self._reply(404, resource_missing(kind, object_id))
        return self._reply(200, self._expand(self.objects[object_id], expand))

    def _post(self, path: str, form: dict[str, str]) -> Reply:
        metadata = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
        if path == "customers":
            obj = customer(email=form.get("email", ""), name=form.get("name", ""))
            obj["metadata"] = metadata
            return self._reply(200, self.put(obj))
        if path.startswith("customers/"):
            obj = self.objects[path.split("/")[1]]
            if "invoice_settings[default_payment_method]" in form:
                value = form["invoice_settings[default_payment_method]"] or None
                obj["invoice_settings"]["default_payment_method"] = value
            return self._reply(200, obj)
        if path == "payment_intents":
            if self.payment_intent_outcome is not None:
                return self.payment_intent_outcome(form)
            obj = payment_intent(
                amount=int(form["amount"]),
                currency=form["currency"],
                customer=form.get("customer"),
                payment_method=form.get("payment_method"),
                metadata=metadata,
            )
            return self._reply(200, self.put(obj))
        if path == "checkout/sessions":
            obj = checkout_session(
                customer=form.get("customer"),
                mode=form["mode"],
                status="open",
                success_url=form["success_url"],
                cancel_url=form["cancel_url"],
                client_reference_id=form.get("client_reference_id"),
                metadata=metadata,
            )
            return self._reply(200, self.put(obj))
        if path == "refunds":
            intent = self.objects.get(form["payment_intent"])
            if intent is None:
                return self._reply(404, resource_missing("payment_intent", form["payment_intent"]))
            obj = refund(
                amount=int(form.get("amount") or intent["amount"]),
                charge=intent.get("latest_charge"),
                payment_intent=intent["id"],
                metadata=metadata,
            )
            return self._reply(200, self.put(obj))
        return self._reply(404, resource_missing("endpoint", path))
