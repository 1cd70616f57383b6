"""The egress rules (services.egress) with the default settings: an empty EGRESS_ALLOW.

Real resolution only: address literals (no lookup) and ``localhost`` (/etc/hosts). Nothing here
sends a packet."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from services import egress
from services.egress import EgressRefused, allowed_addresses, check_url
from services.errors import Refused


@pytest.fixture(autouse=True)
def default_allow_list(settings):
    settings.EGRESS_ALLOW = []
    return settings


def refusal(host: str) -> str:
    return f"cannot connect to {host}: the address is not allowed or did not answer"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",  # inet_aton's short forms reach loopback too
        "2130706433",
        "0x7f.1",
        "localhost",
        "169.254.169.254",  # the cloud metadata service
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",  # CGNAT
        "0.0.0.0",  # noqa: S104 (a destination here, not a bind)
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "::1",
        "::",
        "fd00::1",
        "fc00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "[::1]",
    ],
)
def test_non_public_addresses_are_refused_with_one_wording(host):
    with pytest.raises(EgressRefused) as refused:
        allowed_addresses(host, 443)
    assert refused.value.message == refusal(host)
    assert isinstance(refused.value, Refused)  # the API's 400, the dashboard's message


@pytest.mark.parametrize("host", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed_and_returned_to_connect_to(host):
    assert allowed_addresses(host, 443) == [host]


@pytest.mark.parametrize(
    "host", ["", "no such host", "-oProxyCommand=x", "127.0.0.1 ;touch x", "a..b", "x" * 300]
)
def test_what_is_no_host_name_is_refused_with_the_same_wording(host):
    with pytest.raises(EgressRefused) as refused:
        allowed_addresses(host, 443)
    assert refused.value.message.endswith(": the address is not allowed or did not answer")


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_a_port_out_of_range_is_refused(port):
    with pytest.raises(EgressRefused):
        allowed_addresses("93.184.216.34", port)


def test_a_name_that_does_not_resolve_reads_like_a_forbidden_one():
    with pytest.raises(EgressRefused) as refused:
        allowed_addresses("no-such-host.invalid", 443)
    assert refused.value.message == refusal("no-such-host.invalid")


def test_one_forbidden_address_among_public_ones_refuses_the_name(monkeypatch):
    """A name answering with a public and a private address (a rebinding attempt, or an
    internal name) is refused: the client could connect to either."""
    monkeypatch.setattr(egress, "_resolve", lambda host, port: ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(EgressRefused):
        allowed_addresses("mixed.example", 443)


def test_the_allow_list_takes_cidrs_and_ports(default_allow_list):
    default_allow_list.EGRESS_ALLOW = ["127.0.0.1:5000", "10.0.0.0/8", "[fd00::/8]:443"]

    assert allowed_addresses("127.0.0.1", 5000) == ["127.0.0.1"]
    assert allowed_addresses("localhost", 5000) == ["127.0.0.1"]
    assert allowed_addresses("::ffff:127.0.0.1", 5000) == ["::ffff:127.0.0.1"]
    assert allowed_addresses("10.9.8.7", 22) == ["10.9.8.7"]
    assert allowed_addresses("fd12::1", 443) == ["fd12::1"]
    for host, port in [("127.0.0.1", 5432), ("127.0.0.2", 5000), ("fd12::1", 80), ("::1", 5000)]:
        with pytest.raises(EgressRefused):
            allowed_addresses(host, port)
    with pytest.raises(EgressRefused):  # the allow-list is not a way around other ranges
        allowed_addresses("169.254.169.254", 80)


@pytest.mark.parametrize("entry", ["not-an-address", "10.0.0.0/8:http", "127.0.0.1:70000"])
def test_a_bad_allow_list_entry_is_a_configuration_error(default_allow_list, entry):
    default_allow_list.EGRESS_ALLOW = [entry]
    with pytest.raises(ImproperlyConfigured, match="EGRESS_ALLOW"):
        allowed_addresses("127.0.0.1", 443)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://localhost/acme/app.git", "localhost"),
        ("https://user:s3cret@127.0.0.1:8443/acme/app.git", "127.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("ssh://git@[::1]:2222/acme/app.git", "[::1]"),
        ("git@localhost:acme/app.git", "localhost"),
        ("localhost:acme/app.git", "localhost"),
        ("syslog+tls://127.0.0.1:6514", "127.0.0.1"),
        ("127.0.0.1:6514", "127.0.0.1"),
        ("[::1]:6514", "[::1]"),
        ("https://127.0.0.1:99999/x", "127.0.0.1"),
    ],
)
def test_check_url_refuses_every_form(url, host):
    with pytest.raises(EgressRefused) as refused:
        check_url(url, 443)
    assert refused.value.message == refusal(host)
    assert "s3cret" not in refused.value.message


def test_check_url_returns_the_addresses_with_the_url_s_port_or_the_default(
    default_allow_list,
):
    default_allow_list.EGRESS_ALLOW = ["127.0.0.1:8443", "127.0.0.1:22", "127.0.0.1:6514"]
    assert check_url("https://localhost:8443/a.git", 443) == ["127.0.0.1"]
    assert check_url("git@localhost:a.git", 22) == ["127.0.0.1"]
    assert check_url("ssh://git@127.0.0.1/a.git", 22) == ["127.0.0.1"]
    assert check_url("localhost:6514", 514) == ["127.0.0.1"]
    with pytest.raises(EgressRefused):
        check_url("https://localhost/a.git", 443)  # port 443 is not allow-listed
    assert check_url("https://93.184.216.34/a.git", 443) == ["93.184.216.34"]


@pytest.mark.parametrize("url", ["file:///srv/repos/a", "/srv/repos/a", "relative/path"])
def test_check_url_says_when_a_url_names_no_host(url):
    with pytest.raises(ValueError, match="no host"):
        check_url(url, 443)
