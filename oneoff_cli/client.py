"""The /v1 API over the standard library's ``http.client``: one kept-alive connection, JSON in
and out, ``{id, message}`` errors mapped to exit codes, and retries across outages.

Retries: a request that meets a network error, a 502/503/504 or a 429 is sent again (after
``Retry-After`` when the API gives one, else 0.2 s doubling to 2 s) until ``retry_for`` seconds
have passed. A POST is retried only when it carries an ``Idempotency-Key`` (``jobs run`` always
sends one), or when the operation is idempotent by nature (a cancel), so a retry never starts a
second job. The API key goes in the ``Authorization`` header only and is never printed, not
even with ``--verbose``.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from oneoff_cli.exitcodes import API_REFUSED, AUTH, NETWORK, NOT_FOUND, SERVER, CliError

RETRY_STATUSES = (429, 502, 503, 504)
USER_AGENT = "oneoff-cli/0.1"


class ApiError(CliError):
    def __init__(self, status: int, id: str, message: str):
        if status in (401, 403):
            code = AUTH
        elif status == 404:
            code = NOT_FOUND
        elif status in (502, 503, 504):
            code = NETWORK
        elif status >= 500:
            code = SERVER
        else:
            code = API_REFUSED
        super().__init__(f"{message} (HTTP {status})", code)
        self.status = status
        self.id = id
        self.api_message = message


class NetworkError(CliError):
    def __init__(self, message: str):
        super().__init__(message, NETWORK)


def base_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix ending in /v1) of ``ONEOFF_API_URL``, which may name
    the site (``http://localhost:8000``) or its API (``https://api.render.com/v1``)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"the API URL must be http(s)://host[:port][/v1], not {url!r}", 64)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CliError(f"the API URL has a bad port: {url!r}", 64) from None
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return parts.scheme, parts.hostname, port, path


class Api:
    def __init__(self, url: str, key: str, *, verbose: bool = False, timeout: float = 30.0):
        self.scheme, self.host, self.port, self.prefix = base_url(url)
        self.key = key
        self.verbose = verbose
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self.where = f"{self.scheme}://{self.host}:{self.port}"

    # The connection.

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                import ssl

                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _log(self, text: str) -> None:
        if self.verbose:
            sys.stderr.write(f"oneoff: {text}\n")
            sys.stderr.flush()

    def _send_once(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str], resend: bool
    ) -> tuple[int, bytes, dict[str, str]]:
        """One exchange; with ``resend``, a kept-alive connection the server closed meanwhile is
        reopened and the request sent again at once."""
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if reused and resend and attempt == 0:
                    continue  # the server timed out our idle connection: not an outage
                raise
            except BaseException:
                self.close()  # half a response on the wire: never reuse it
                raise
            if response.will_close:
                self.close()
            return response.status, data, {k.lower(): v for k, v in response.getheaders()}
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        retry_for: float = 0.0,
        on_retry=None,
        idempotent: bool = False,
    ) -> Any:
        """The decoded JSON answer of a 2xx; ``ApiError`` or ``NetworkError`` otherwise."""
        target = self.prefix + path
        if params:
            target += "?" + urlencode(
                {k: v for k, v in params.items() if v is not None}, doseq=True, quote_via=quote
            )
        sent = {
            "Authorization": f"Bearer {self.key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        retryable = idempotent or method in ("GET", "HEAD") or "Idempotency-Key" in sent
        deadline = time.monotonic() + retry_for
        delay = 0.2
        while True:
            started = time.monotonic()
            self._log(f"> {method} {target}")
            try:
                status, raw, answer_headers = self._send_once(
                    method, target, payload, sent, retryable
                )
            except (OSError, http.client.HTTPException) as exc:
                error: CliError = NetworkError(f"cannot reach {self.where}: {_describe(exc)}")
                wait = delay
            else:
                self._log(f"< {status} ({(time.monotonic() - started) * 1000:.0f} ms)")
                if 200 <= status < 300:
                    return json.loads(raw) if raw else None
                error = _api_error(status, raw)
                if status not in RETRY_STATUSES:
                    raise error
                wait = _retry_after(answer_headers.get("retry-after"), delay)
            if not retryable or time.monotonic() + wait > deadline:
                raise error
            if on_retry is not None:
                on_retry(error)
            self._log(f"retrying in {wait:.1f} s: {error.message}")
            time.sleep(wait)
            delay = min(delay * 2, 2.0)

    def get(self, path: str, **kwargs) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> Any:
        return self.request("POST", path, body=body, **kwargs)

    def pages(self, path: str, params: dict[str, Any], limit: int | None, **kwargs):
        """Items of a cursor-paged list (newest first), at most ``limit`` of them."""
        cursor = None
        count = 0
        while limit is None or count < limit:
            size = 100 if limit is None else min(100, limit - count)
            page = self.get(path, params={**params, "limit": size, "cursor": cursor}, **kwargs)
            for item in page:
                yield item
                count += 1
            if len(page) < size or not page:
                return
            cursor = page[-1]["cursor"]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the connection was closed without an answer"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _api_error(status: int, raw: bytes) -> ApiError:
    try:
        data = json.loads(raw)
        return ApiError(status, str(data["id"]), str(data["message"]))
    except (ValueError, KeyError, TypeError):
        text = raw.decode(errors="replace").strip().splitlines()
        message = text[0][:200] if text else http.client.responses.get(status, "error")
        return ApiError(status, "error", message)


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(max(float(value or ""), 0.0), 60.0)
    except ValueError:
        return default
