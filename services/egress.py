"""Egress rules: which addresses the server may connect to on a tenant's behalf.

A tenant names hosts the server then connects to from inside its own network: a git repository,
a registry, a syslog destination. Without rules that is a way into the server's network (its
database, the cloud's metadata service at 169.254.169.254) and, through the errors, a port
scanner. So every such connection goes through ``allowed_addresses``: it resolves the name once,
refuses it if ANY of its addresses is loopback, private, link-local, shared (CGNAT),
unspecified, multicast or reserved (or an IPv4-mapped, 6to4 or NAT64 form of one) unless the
operator's ``EGRESS_ALLOW`` lists it, and returns the addresses for the caller to connect to,
so a second lookup cannot answer differently (DNS rebinding).

What a tenant sees of any failure, a refusal here or a connection that was refused, timed out
or failed its TLS verification, is ``EgressRefused``'s one wording; the real reason goes to the
server's log for the operator.

``EGRESS_ALLOW`` is a list of CIDRs (a bare address is one host), each optionally limited to a
port: ``127.0.0.1:5000``, ``10.0.0.0/8``, ``[fd00::/8]:443``, ``::1``.
"""

import functools
import ipaddress
import logging
import re
import socket
import ssl
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from services.errors import Refused

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never a destination unless allow-listed: the ranges of RFC 6890's special-purpose registries
# that are not globally reachable, spelled out so the answer does not depend on the Python
# version's idea of ``is_global``.
FORBIDDEN = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (CGNAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, the cloud metadata services
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/96",  # unspecified, loopback, IPv4-compatible (deprecated)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local (ULA)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: an IPv4 address inside
SIXTOFOUR = ipaddress.ip_network("2002::/16")

_HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")


class EgressRefused(Refused):
    """The server will not connect to ``host``, or tried and got no usable answer. Its message
    is the same for every cause (a forbidden address, a failed lookup, a refused, silent or
    TLS-failing port), so it tells a tenant nothing about the network behind the server."""

    def __init__(self, host: str):
        self.host = host[:253]
        super().__init__(
            f"cannot connect to {self.host}: the address is not allowed or did not answer"
        )


# The allow-list.


def _parse_entry(entry: str) -> tuple[IPNetwork, int | None]:
    """``CIDR``, ``CIDR:PORT`` (IPv4) or ``[CIDR]:PORT`` (IPv6)."""
    text, port = entry.strip(), None
    if text.startswith("["):
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d{1,5}))?", text)
        if not match:
            raise ValueError("an IPv6 entry with a port is written [CIDR]:PORT")
        text, port = match[1], int(match[2]) if match[2] else None
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError("the port must be a number")
        port = int(port_text)
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("the port must be between 1 and 65535")
    return ipaddress.ip_network(text, strict=False), port


@functools.cache
def _allow_list(entries: tuple[str, ...]) -> tuple[tuple[IPNetwork, int | None], ...]:
    parsed = []
    for entry in entries:
        if not entry.strip():
            continue
        try:
            parsed.append(_parse_entry(entry))
        except ValueError as exc:
            raise ImproperlyConfigured(f"EGRESS_ALLOW entry {entry!r} is invalid: {exc}") from exc
    return tuple(parsed)


def _allow_listed(address: IPAddress, port: int) -> bool:
    entries = _allow_list(tuple(settings.EGRESS_ALLOW))
    forms = [address, *_embedded(address)]
    return any(
        form in network and (allowed_port is None or allowed_port == port)
        for network, allowed_port in entries
        for form in forms
        if form.version == network.version
    )


# The rules.


def _embedded(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address stands for, where packets to it reach that IPv4
    address: IPv4-mapped (``::ffff:a.b.c.d``), the NAT64 well-known prefix, 6to4."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    return found


def _forbidden(address: IPAddress) -> bool:
    for form in (address, *_embedded(address)):
        if any(form in network for network in FORBIDDEN if network.version == form.version):
            return True
        if (
            form.is_loopback
            or form.is_private
            or form.is_link_local
            or form.is_unspecified
            or form.is_multicast
            or form.is_reserved
            or not form.is_global
        ):
            return True
    return False


def _resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def allowed_addresses(host: str, port: int) -> list[str]:
    """The addresses to connect to for ``host:port``; ``EgressRefused`` unless every address
    ``host`` resolves to is a public one or allow-listed by ``EGRESS_ALLOW``.

    Connect to these (keeping ``host`` for TLS server-name checks), never to ``host`` again: a
    second lookup could answer with an address this check never saw.
    """
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(name)
        literal = True
    except ValueError:
        literal = False
    if not literal and not _HOSTNAME.match(name):
        log.warning("egress to %r refused: not a host name", host)
        raise EgressRefused(host)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        log.warning("egress to %s refused: port %r", host, port)
        raise EgressRefused(host)
    try:
        addresses = _resolve(name, port)
    except (OSError, UnicodeError) as exc:
        log.warning("egress to %s:%s refused: %s does not resolve (%s)", host, port, name, exc)
        raise EgressRefused(host) from exc
    if not addresses:
        log.warning("egress to %s:%s refused: %s has no address", host, port, name)
        raise EgressRefused(host)
    for address in addresses:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
        if _forbidden(parsed) and not _allow_listed(parsed, port):
            log.warning(
                "egress to %s:%s refused: %s is in a forbidden range (EGRESS_ALLOW can allow it)",
                host,
                port,
                address,
            )
            raise EgressRefused(host)
    return addresses


# URLs.

_ENDPOINT = re.compile(r"^(\[[^\]/@]+\]|[^:/@\[\]]+):(\d{1,5})$")
_SCP_LIKE = re.compile(r"^(?:[^@/\[\]:]+@)?(\[[^\]/@]+\]|[^:/@\[\]]+):(?!//)")


def check_url(url: str, default_port: int) -> list[str]:
    """``allowed_addresses`` for the host and port of a URL: ``scheme://[user@]host[:port]/…``
    (https, ssh, syslog…), git's scp-like ``[user@]host:path``, or a ``HOST:PORT`` endpoint
    (``[v6addr]:PORT``). A URL without its own port uses ``default_port``; ``HOST:DIGITS`` is
    read as an endpoint, not as an scp-like path. ``ValueError`` for a URL naming no host (a
    local path, ``file://``): nothing to connect to, the caller decides."""
    url = url.strip()
    if "://" in url:
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError as exc:  # a broken IPv6 literal
            raise EgressRefused(url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]) from exc
        if not hostname:
            raise ValueError(f"{parts.scheme}: URLs name no host to connect to")
        try:
            port = parts.port
        except ValueError as exc:
            log.warning("egress to %s refused: %s", hostname, exc)
            raise EgressRefused(hostname) from exc
        host = f"[{hostname}]" if ":" in hostname else hostname
        return allowed_addresses(host, port or default_port)
    endpoint = _ENDPOINT.match(url)
    if endpoint:
        return allowed_addresses(endpoint[1], int(endpoint[2]))
    scp = _SCP_LIKE.match(url)
    if scp:
        return allowed_addresses(scp[1], default_port)
    raise ValueError("the URL names no host to connect to")


class CaFileError(OSError):
    """A CA file named in a setting (``LOG_STREAM_CA_FILE``, ``WEBHOOK_CA_FILE``) cannot be
    loaded: the operator's to fix, and said as it is."""


@functools.cache
def tls_context(ca_file: str, setting: str) -> ssl.SSLContext:
    """The TLS client context for an outbound destination: the system store (plus ``ca_file``,
    named by ``setting`` in errors), hostname check, certificates required, TLS 1.2 or newer."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CaFileError(f"{setting} {ca_file!r} cannot be loaded: {exc}") from exc
    return context
