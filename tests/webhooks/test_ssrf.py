"""The SSRF guard. No test here opens a connection to anything but loopback: refused targets
are refused before any socket is made (and the loopback receiver shows nothing arrived)."""

from __future__ import annotations

import socket

import pytest

from tenants.webhooks import ssrf
from tenants.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tests.webhooks.conftest import emit, endpoint_for

pytestmark = pytest.mark.django_db

PRIVATE_URLS = [
    "https://10.0.0.1/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "https://127.0.0.1/hook",
    "https://127.0.0.1:8443/hook",
    "https://[::1]/hook",
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",  # multicast
    "https://100.64.0.1/hook",  # shared address space (CGNAT)
    "https://240.0.0.1/hook",  # reserved
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "https://[::ffff:10.1.2.3]/hook",
    "https://2130706433/hook",  # 127.0.0.1 as one number
    "https://0x7f.1/hook",
    "https://127.1/hook",
    "https://localhost/hook",
    "https://api.localhost/hook",
]


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Resolve the given names to the given addresses; everything else as usual."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            asked.append(host)
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (address, port),
                )
                for address in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.usefixtures("strict_targets")
@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_literal_targets_are_refused_at_creation_and_delivery(url):
    with pytest.raises(ssrf.UnsafeTarget) as refused:
        ssrf.url_check(url)
    assert refused.value.code == "private_address"
    with pytest.raises(ssrf.UnsafeTarget):
        ssrf.target_resolve(url)


@pytest.mark.usefixtures("strict_targets")
@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "https_required"),
        ("ftp://hooks.example.com/x", "https_required"),
        ("https://user:pw@hooks.example.com/x", "credentials_not_allowed"),
        ("https://token@hooks.example.com/x", "credentials_not_allowed"),
        ("https:///x", "host_required"),
        ("https://hooks.example.com:99999/x", "invalid"),
    ],
)
def test_malformed_targets_are_refused(url, code):
    with pytest.raises(ssrf.UnsafeTarget) as refused:
        ssrf.url_check(url)
    assert refused.value.code == code


@pytest.mark.usefixtures("strict_targets")
def test_public_targets_pass(monkeypatch):
    assert ssrf.url_check("https://hooks.example.com/x").host == "hooks.example.com"
    assert ssrf.url_check("https://93.184.216.34:8443/x").port == 8443
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    target = ssrf.target_resolve("https://hooks.example.com/x")
    assert target.address == "93.184.216.34"
    assert target.port == 443


@pytest.mark.usefixtures("strict_targets")
@pytest.mark.parametrize(
    "addresses",
    [["10.0.0.5"], ["127.0.0.1"], ["169.254.169.254"], ["fe80::1"], ["93.184.216.34", "10.0.0.5"]],
)
def test_a_hostname_resolving_to_a_private_address_is_refused(monkeypatch, addresses):
    fake_dns(monkeypatch, {"internal.example.com": addresses})
    ssrf.url_check("https://internal.example.com/x")  # fine by its name...
    with pytest.raises(ssrf.UnsafeTarget) as refused:
        ssrf.target_resolve("https://internal.example.com/x")  # ...not by where it goes
    assert refused.value.code == "private_address"


@pytest.mark.usefixtures("strict_targets")
def test_an_unresolvable_host_is_refused(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(ssrf.UnsafeTarget) as refused:
        ssrf.target_resolve("https://nowhere.example.com/x")
    assert refused.value.code == "unresolvable"


def test_debug_allows_private_and_http(settings):
    settings.DEBUG = True
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    ssrf.url_check("http://10.0.0.1/hook")
    ssrf.url_check("http://hooks.example.com/hook")


def test_the_setting_allows_private_targets_but_no_plain_http_to_public_ones(settings, monkeypatch):
    settings.DEBUG = False
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    ssrf.url_check("https://10.0.0.1/hook")
    ssrf.url_check("http://10.0.0.1/hook")
    with pytest.raises(ssrf.UnsafeTarget) as refused:
        ssrf.url_check("http://93.184.216.34/hook")
    assert refused.value.code == "https_required"
    fake_dns(monkeypatch, {"public.example.com": ["93.184.216.34"]})
    ssrf.url_check("http://public.example.com/hook")  # the name may be internal...
    with pytest.raises(ssrf.UnsafeTarget) as refused:
        ssrf.target_resolve("http://public.example.com/hook")  # ...it is not
    assert refused.value.code == "https_required"


def test_a_delivery_to_a_name_resolving_to_loopback_is_refused_without_connecting(
    alpha, receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/rebound")
    # Created while allowed; then the rules tighten and its name now points at loopback.
    url = f"https://rebound.example.com:{receiver.port}/rebound"
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url)
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    settings.DEBUG = False
    fake_dns(monkeypatch, {"rebound.example.com": ["127.0.0.1"]})

    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.FAILED  # a failed attempt, retried later
    assert delivery.last_status_code is None
    assert delivery.last_error.startswith("Refused (private_address)")
    assert receiver.requests == []


def test_the_connection_goes_to_the_checked_address(
    alpha, receiver, allow_private, monkeypatch, django_capture_on_commit_callbacks
):
    """The host is resolved once, by the guard; the socket opens to that address (no
    second lookup that a rebinding DNS server could answer differently)."""
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/pinned")
    url = f"http://pinned.example.com:{receiver.port}/pinned"
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url)
    asked = fake_dns(monkeypatch, {"pinned.example.com": ["127.0.0.1"]})

    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    assert WebhookDelivery.objects.get(event=event).status == DeliveryStatus.SUCCEEDED
    [got] = receiver.at("/pinned")
    assert got.verified
    assert got.headers["host"] == f"pinned.example.com:{receiver.port}"
    assert asked == ["pinned.example.com"]
