"""A small client of Oneoff's HTTP API (stdlib only) that counts what the suite judges: answers
of 500 and above, told apart from a 503 that carries ``Retry-After`` (the answer the API owes a
client while the database is down), and requests that got no answer at all."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

TIMEOUT = 15.0


@dataclass
class Answer:
    status: int  # 0: no answer (refused, reset, timed out)
    body: Any
    headers: dict[str, str]
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def is_5xx(self) -> bool:
        """A server error a client cannot act on: any 5xx but a 503 with ``Retry-After``."""
        return self.status >= 500 and not (self.status == 503 and "retry-after" in self.headers)


@dataclass
class Counts:
    requests: int = 0
    server_errors: int = 0  # 5xx but a 503 with Retry-After
    unavailable: int = 0  # 503 with Retry-After
    no_answer: int = 0
    examples: list[str] = field(default_factory=list)

    def minus(self, earlier: Counts) -> Counts:
        return Counts(
            self.requests - earlier.requests,
            self.server_errors - earlier.server_errors,
            self.unavailable - earlier.unavailable,
            self.no_answer - earlier.no_answer,
            self.examples[len(earlier.examples) :],
        )


class Api:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self._counts = Counts()
        self._lock = threading.Lock()

    def counts(self) -> Counts:
        with self._lock:
            c = self._counts
            return Counts(c.requests, c.server_errors, c.unavailable, c.no_answer, [*c.examples])

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = TIMEOUT
    ) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                answer = self._answer(response.status, response.read(), response.headers)
        except urllib.error.HTTPError as exc:
            answer = self._answer(exc.code, exc.read(), exc.headers)
        except (OSError, ValueError) as exc:  # refused, reset, timed out, cut short
            answer = Answer(0, None, {}, error=f"{type(exc).__name__}: {exc}")
        self._count(method, path, answer)
        return answer

    @staticmethod
    def _answer(status: int, raw: bytes, headers: Any) -> Answer:
        lowered = {k.lower(): v for k, v in dict(headers or {}).items()}
        body: Any = raw.decode(errors="replace")
        if lowered.get("content-type", "").startswith("application/json") and raw:
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        return Answer(status, body, lowered)

    def _count(self, method: str, path: str, answer: Answer) -> None:
        with self._lock:
            c = self._counts
            c.requests += 1
            if answer.status == 0:
                c.no_answer += 1
            elif answer.is_5xx:
                c.server_errors += 1
                text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
                c.examples.append(f"{method} {path.split('?')[0]} -> {answer.status} {text[:160]}")
            elif answer.status == 503:
                c.unavailable += 1

    def get_until_ok(self, path: str, timeout: float = 60.0) -> Answer:
        """GET, asking again while the answer is not a 2xx (the part may be down)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.request("GET", path)
            if answer.ok or time.monotonic() > deadline:
                return answer
            time.sleep(0.5)

    # Oneoff's resources.

    def owner_id(self) -> str:
        answer = self.get_until_ok("/v1/owners")
        return str(answer.body[0]["owner"]["id"])

    def create_image_service(self, owner_id: str, name: str, image: str) -> tuple[str, str]:
        answer = self.request(
            "POST",
            "/v1/services",
            {
                "type": "background_worker",
                "name": name,
                "ownerId": owner_id,
                "image": {"imagePath": image},
                "serviceDetails": {"plan": "starter"},
            },
        )
        if answer.status != 201:
            raise RuntimeError(f"creating the service: {answer.status} {answer.body}")
        return answer.body["service"]["id"], answer.body["buildId"]

    def build(self, service_id: str, build_id: str) -> Answer:
        return self.request("GET", f"/v1/services/{service_id}/builds/{build_id}")

    def create_job(self, service_id: str, command: str) -> Answer:
        return self.request("POST", f"/v1/services/{service_id}/jobs", {"startCommand": command})

    def job(self, service_id: str, job_id: str) -> Answer:
        return self.request("GET", f"/v1/services/{service_id}/jobs/{job_id}")

    def cancel(self, service_id: str, job_id: str) -> Answer:
        return self.request("POST", f"/v1/services/{service_id}/jobs/{job_id}/cancel")

    def jobs_since(self, service_id: str, created_after: str) -> list[dict]:
        """Every job of the service created at or after ``created_after`` (all pages)."""
        found: list[dict] = []
        cursor = ""
        while True:
            query = {"createdAfter": created_after, "limit": "100"}
            if cursor:
                query["cursor"] = cursor
            answer = self.get_until_ok(
                f"/v1/services/{service_id}/jobs?{urllib.parse.urlencode(query)}"
            )
            if not answer.ok:
                raise RuntimeError(f"listing jobs: {answer.status} {answer.body}")
            page = answer.body
            found += [item["job"] for item in page]
            if len(page) < 100:
                return found
            cursor = page[-1]["cursor"]

    def logs(self, owner_id: str, job_id: str, start: str) -> list[dict]:
        """Every stored line of a job, oldest first, through Render's time-window paging (each
        line once, told apart by its ``id``)."""
        lines: dict[str, dict] = {}
        start_time = start
        for _ in range(10_000):
            query = {
                "ownerId": owner_id,
                "resource": job_id,
                "direction": "forward",
                "startTime": start_time,
                "limit": "100",
            }
            answer = self.get_until_ok(f"/v1/logs?{urllib.parse.urlencode(query)}")
            if not answer.ok:
                raise RuntimeError(f"reading logs of {job_id}: {answer.status} {answer.body}")
            for line in answer.body["logs"]:
                lines.setdefault(line["id"], line)
            if not answer.body["hasMore"]:
                break
            start_time = answer.body["nextStartTime"]
        return list(lines.values())

    def set_log_stream(self, owner_id: str, endpoint: str, *, enabled: bool = True) -> Answer:
        return self.request(
            "PUT",
            f"/v1/logs/streams/owner/{owner_id}",
            {"endpoint": endpoint, "preview": "send", "enabled": enabled, "token": "chaos"},
        )

    def delete_log_stream(self, owner_id: str) -> Answer:
        return self.request("DELETE", f"/v1/logs/streams/owner/{owner_id}")
