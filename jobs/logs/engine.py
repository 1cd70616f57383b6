"""The Docker transport of job logs: the one module that uses docker-py's private internals.

Following a log is the runner's hottest path (a job may print a million lines). docker-py's
public ``logs(stream=True)`` reads every message through urllib3 (a header, then a payload), and
urllib3's chunk reader alone costs ~15 µs a message, as the engine sends one HTTP chunk each.
So ``open_log_stream`` makes the request itself with the private helpers docker-py uses for the
same call (``APIClient._get``, ``_url``, ``_raise_for_status``, ``_get_raw_response_socket``,
``_disable_socket_timeout``), and ``raw_chunks`` reads the response's buffered socket
(urllib3's ``response.raw._fp.fp``) in large blocks and undoes the chunked encoding itself.
``json_file_path`` tells a local engine (docker-py's ``base_url`` for a unix socket) whose
json-file this process may read instead of asking the engine at all, and ``json_file_pieces``
through how many rotated pieces.

Keep every such use here, nowhere else. ``tests/jobs/test_docker_internals.py`` checks each one
against the installed docker-py and urllib3 (and the real engine), and fails naming their
versions when an upgrade removes or changes one.
"""

import io
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from docker import DockerClient
from requests import Response


def raw_chunks(response: Response) -> Iterator[bytes]:
    """The body's bytes as they arrive. Docker sends one HTTP chunk per log message, and
    urllib3's chunk reader costs ~15 µs a chunk; reading the buffered socket in large blocks and
    undoing the chunked encoding here is several times faster."""
    raw = response.raw
    fp = getattr(getattr(raw, "_fp", None), "fp", None)
    if getattr(raw, "chunked", False) and fp is not None and hasattr(fp, "read1"):
        yield from dechunk(fp)
    elif getattr(raw, "chunked", False):
        yield from raw.read_chunked(decode_content=False)
    else:
        while True:
            data = raw.read1(65536)
            if not data:
                return
            yield data


def dechunk(fp: io.BufferedIOBase, block: int = 256 * 1024) -> Iterator[bytes]:
    """Decode HTTP/1.1 chunked transfer encoding from a buffered binary stream."""
    buf = b""
    pos = 0
    while True:
        out: list[bytes] = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            if size == 0:
                if out:
                    yield b"".join(out)
                return
            end = eol + 2 + size
            if end + 2 > len(buf):
                break
            out.append(buf[eol + 2 : end])
            pos = end + 2
        if out:
            yield b"".join(out)
        data = fp.read1(block)
        if not data:
            return
        buf = buf[pos:] + data
        pos = 0


def open_log_stream(
    client: DockerClient, container_id: str, since: str | None, follow: bool = True
) -> Response:
    """The raw multiplexed stream of a container's logs (a ``requests`` response)."""
    api: Any = client.api  # docker's stubs leave out the private helpers used here
    params: dict[str, int | str] = {
        "follow": int(follow),
        "stdout": 1,
        "stderr": 1,
        "timestamps": 1,
    }
    if since:
        params["since"] = since
    response = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
    api._raise_for_status(response)
    sock = api._get_raw_response_socket(response)
    api._disable_socket_timeout(sock)
    return response


def json_file_path(client: DockerClient, attrs: dict[str, Any]) -> str | None:
    """The container's json-file log, when this process may read it directly.

    Reading the file is how Fluent Bit, Filebeat and Vector collect Docker logs at volume: it
    spares the engine decoding every line into an HTTP chunk (five CPU seconds per million lines,
    more than the rest of the pipeline). It needs the engine on this machine (a unix socket), the
    json-file driver either unrotated or rotated by renaming through two or more uncompressed
    pieces (``json_file_pieces``; a piece truncated in place or compressed away would be a gap),
    and read access; otherwise, or with ``JOB_LOG_SOURCE=api``, the follower uses the logs
    endpoint.
    """
    if settings.JOB_LOG_SOURCE != "auto":
        return None
    if getattr(client.api, "base_url", "") != "http+docker://localhost":  # docker-py: unix socket
        return None
    log_config = (attrs.get("HostConfig") or {}).get("LogConfig") or {}
    path = attrs.get("LogPath") or ""
    if log_config.get("Type") != "json-file" or json_file_pieces(attrs) == 0:
        return None
    if not path or not os.access(path, os.R_OK):
        return None
    return path


def json_file_pieces(attrs: dict[str, Any]) -> int:
    """How many pieces Docker rotates the container's json-file through (``path``, ``path.1``,
    …): 1 when it never rotates, 0 when it rotates in a way a reader cannot follow (truncating
    the one file in place, or compressing the rotated pieces)."""
    config = ((attrs.get("HostConfig") or {}).get("LogConfig") or {}).get("Config") or {}
    if not config.get("max-size") or config.get("max-size") == "-1":
        return 1
    if str(config.get("compress", "")).lower() in ("1", "true"):
        return 0
    try:
        pieces = int(config.get("max-file") or 1)
    except ValueError:
        return 0
    return pieces if pieces >= 2 else 0


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def json_file_piece_bytes(attrs: dict[str, Any]) -> int:
    """The size at which Docker rotates the container's json-file (``max-size``, in Docker's
    1024-based units), or 0 when it does not."""
    config = ((attrs.get("HostConfig") or {}).get("LogConfig") or {}).get("Config") or {}
    text = str(config.get("max-size") or "").strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = text.rstrip("kmg"), text[len(text.rstrip("kmg")) :]
    try:
        return max(0, int(float(number) * _UNITS[unit]))
    except (KeyError, ValueError):
        return 0
