"""The ``oneoff`` commands (Click). Run ``oneoff --help``; the README's "Command-line client"
section documents the commands, the configuration and the exit codes (``exitcodes``)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import click

from oneoff_cli import config, exitcodes
from oneoff_cli.client import Api, ApiError
from oneoff_cli.exitcodes import CliError
from oneoff_cli.output import (
    Spinner,
    Style,
    describe_end,
    duration,
    print_json,
    short_time,
    table,
)

SERVICE_ID = re.compile(r"^(srv|crn)-[0-9a-z]{20}$")
JOB_ID = re.compile(r"^job-[0-9a-z]{20}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SINCE = re.compile(r"^(\d+)([smhd])$")
CREATE_RETRY_FOR = 10.0  # seconds a job create is retried (it always has an Idempotency-Key)
WAIT_RETRY_FOR = 600.0  # seconds a wait or tail rides out an outage of the API


class State:
    def __init__(self, api_url, api_key, verbose, quiet, colour):
        self.api_url = api_url
        self.api_key = api_key
        self.verbose = verbose
        self.quiet = quiet
        self.style = Style(colour)
        self._api: Api | None = None

    @property
    def api(self) -> Api:
        if self._api is None:
            settings = config.resolve(self.api_url, self.api_key)
            self._api = Api(settings.api_url, settings.api_key, verbose=self.verbose)
        return self._api

    def note(self, message: str) -> None:
        """The client's own remarks, on stderr (never mixed into a job's stdout)."""
        if not self.quiet:
            click.echo(f"oneoff: {message}", err=True)


pass_state = click.make_pass_decorator(State)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-url", metavar="URL", help="Oneoff's URL (default: $ONEOFF_API_URL).")
@click.option(
    "--api-key",
    metavar="KEY",
    help="API key (default: $ONEOFF_API_KEY; a flag is visible to other users in `ps`).",
)
@click.option("-v", "--verbose", is_flag=True, help="Print each request (never the key).")
@click.option("-q", "--quiet", is_flag=True, help="No remarks of the client's own on stderr.")
@click.option("--color/--no-color", "colour", default=None, help="Colour (default: on a terminal).")
@click.version_option("0.1.0", prog_name="oneoff")
@click.pass_context
def cli(ctx, api_url, api_key, verbose, quiet, colour):
    """Run and follow one-off jobs on Oneoff (or Render) from the command line."""
    ctx.obj = State(api_url, api_key, verbose, quiet, colour)


# Services.


@cli.group()
def services():
    """Services of the API key's workspace."""


@services.command("list")
@click.option("--json", "as_json", is_flag=True, help="The API's service objects, as JSON.")
@pass_state
def services_list(state: State, as_json: bool):
    """List the services."""
    items = [item["service"] for item in state.api.pages("/services", {}, None)]
    if as_json:
        print_json(items)
        return
    rows = [
        [
            s["id"],
            s["name"],
            s.get("type", ""),
            (s.get("serviceDetails") or {}).get("plan", ""),
            "suspended" if s.get("suspended") == "suspended" else "",
        ]
        for s in items
    ]
    table(rows, ["ID", "NAME", "TYPE", "PLAN", "SUSPENDED"], state.style)


def find_service(api: Api, value: str) -> dict:
    """A service by id or by name (GET /v1/services?name=…)."""
    if SERVICE_ID.match(value):
        return api.get(f"/services/{value}")
    found = [item["service"] for item in api.pages("/services", {"name": value}, None)]
    if not found:
        raise CliError(f"no service named {value!r}", exitcodes.NOT_FOUND)
    if len(found) > 1:
        ids = ", ".join(s["id"] for s in found)
        raise CliError(f"several services are named {value!r}: use an id ({ids})", exitcodes.USAGE)
    return found[0]


def service_id_of(api: Api, value: str) -> str:
    return value if SERVICE_ID.match(value) else find_service(api, value)["id"]


def find_job(api: Api, job_id: str, service: str | None) -> tuple[dict, dict]:
    """(service, job). The API reads a job under its service: without ``--service`` each service
    of the workspace is asked in turn (one request per service)."""
    if not JOB_ID.match(job_id):
        raise CliError(f"no job {job_id!r} (a job id is job-…)", exitcodes.NOT_FOUND)
    if service:
        svc = find_service(api, service)
        return svc, api.get(f"/services/{svc['id']}/jobs/{job_id}")
    for item in api.pages("/services", {}, None):
        svc = item["service"]
        try:
            return svc, api.get(f"/services/{svc['id']}/jobs/{job_id}")
        except ApiError as exc:
            if exc.status != 404:
                raise
    raise CliError(f"no job {job_id} in this workspace", exitcodes.NOT_FOUND)


def _set_quiet(ctx, param, value):
    if value:
        ctx.find_object(State).quiet = True


quiet_option = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    expose_value=False,
    callback=_set_quiet,
    help="Nothing but the job's own output (and errors).",
)

# Jobs.


@cli.group()
def jobs():
    """Run, list, inspect, follow and cancel one-off jobs."""


def env_pairs(values: tuple[str, ...]) -> list[dict[str, str]]:
    pairs = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not ENV_KEY.match(key):
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--env")
        pairs.append({"key": key, "value": val})
    return pairs


def start_command(words: tuple[str, ...]) -> str:
    """One word is a shell command line as is (``-- 'make db && migrate'``); several are quoted
    so each stays one word (``-- python -c 'print(1)'``)."""
    import shlex

    return words[0] if len(words) == 1 else shlex.join(words)


def job_exit_code(job: dict) -> int:
    """The exit code of ``run --wait`` for a finished job."""
    if job.get("status") == "succeeded":
        return exitcodes.OK
    reason = job.get("reason") or {}
    if "timedOutSeconds" in reason:
        return exitcodes.TIMED_OUT
    code = job.get("exitCode")
    if job.get("status") == "failed":
        if isinstance(code, int) and 0 < code < 256:
            return code
        if "oomKilled" in reason:
            return 137
    return exitcodes.JOB_FAILED


@jobs.command("run")
@click.argument("service")
@click.argument("command", nargs=-1, required=True)
@click.option("--plan", "plan_id", metavar="ID", help="Plan id (default: the service's).")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Env var for this job.")
@click.option("--timeout", type=click.IntRange(min=1), metavar="SECONDS", help="Job timeout.")
@click.option("--wait", is_flag=True, help="Wait for the end; exit with the job's exit code.")
@click.option("--tail", is_flag=True, help="Stream the log live (implies --wait).")
@click.option("--idempotency-key", metavar="K", help="Retries with K start one job (24 h).")
@click.option("--json", "as_json", is_flag=True, help="Print the job object as JSON.")
@quiet_option
@pass_state
def jobs_run(
    state: State,
    service: str,
    command: tuple[str, ...],
    plan_id: str | None,
    env: tuple[str, ...],
    timeout: int | None,
    wait: bool,
    tail: bool,
    idempotency_key: str | None,
    as_json: bool,
):
    """Run COMMAND with SERVICE's latest build (SERVICE: id or name).

    \b
    oneoff jobs run web --wait -- ./manage.py migrate
    oneoff jobs run srv-… --tail --env DRY_RUN=1 -- 'backfill --since 2024'
    """
    if tail and as_json:
        raise click.UsageError("--tail prints the log; --json is for the job object")
    body: dict[str, Any] = {"startCommand": start_command(command)}
    if plan_id:
        body["planId"] = plan_id
    if env:
        body["envVars"] = env_pairs(env)
    if timeout is not None:
        body["timeoutSeconds"] = timeout
    api = state.api
    svc = find_service(api, service) if tail else None
    service_id = svc["id"] if svc else service_id_of(api, service)
    import uuid

    key = idempotency_key or str(uuid.uuid4())
    job = api.post(
        f"/services/{service_id}/jobs",
        body,
        headers={"Idempotency-Key": key},
        retry_for=CREATE_RETRY_FOR,
    )
    follow(state, svc, service_id, job, wait=wait, tail=tail, as_json=as_json)


def follow(
    state: State,
    svc: dict | None,
    service_id: str,
    job: dict,
    *,
    wait: bool,
    tail: bool,
    as_json: bool,
) -> None:
    """After a create: print the job (its id, or JSON), or wait for its end (``--wait``, and
    with ``--tail`` its log live) and exit with its exit code."""
    api = state.api
    if not (wait or tail):
        if as_json:
            print_json(job)
        else:
            click.echo(job["id"])
            state.note(f"{job['id']} {job['status']}; follow it: oneoff jobs logs -f {job['id']}")
        return
    from oneoff_cli.watch import Terminated, Watch

    watch = Watch(
        api,
        service_id,
        job,
        owner_id=svc["ownerId"] if svc else None,
        tail=tail,
        retry_for=WAIT_RETRY_FOR,
        spinner=Spinner(),
        notes=None if state.quiet else state.note,
    )
    try:
        job = watch.run()
    except KeyboardInterrupt as exc:
        if watch.spinner:
            watch.spinner.clear()
        interrupted(state, watch, terminated=isinstance(exc, Terminated))
    if as_json:
        print_json(job)
    else:
        state.note(f"{job['id']} {job['status']}: {describe_end(job)}")
    sys.exit(job_exit_code(job))


@jobs.command("rerun")
@click.argument("job_id", metavar="JOB")
@click.option("--exact", is_flag=True, help="The job's own image and env, not the latest.")
@click.option("--service", metavar="SERVICE", help="JOB's service (saves a lookup).")
@click.option("--wait", is_flag=True, help="Wait for the end; exit with the job's exit code.")
@click.option("--tail", is_flag=True, help="Stream the log live (implies --wait).")
@click.option("--json", "as_json", is_flag=True, help="Print the new job object as JSON.")
@quiet_option
@pass_state
def jobs_rerun(
    state: State,
    job_id: str,
    exact: bool,
    service: str | None,
    wait: bool,
    tail: bool,
    as_json: bool,
):
    """Run JOB's command again: on the latest build and env vars (with JOB's plan, timeout and
    env overrides), or with --exact on JOB's own image and env snapshot.

    \b
    oneoff jobs rerun job-… --tail
    oneoff jobs rerun job-… --exact --wait
    """
    if tail and as_json:
        raise click.UsageError("--tail prints the log; --json is for the job object")
    api = state.api
    svc, original = find_job(api, job_id, service)
    body: dict[str, Any] = {"rerunOf": original["id"]}
    if exact:
        body["exact"] = True
    import uuid

    job = api.post(
        f"/services/{svc['id']}/jobs",
        body,
        headers={"Idempotency-Key": str(uuid.uuid4())},
        retry_for=CREATE_RETRY_FOR,
    )
    follow(state, svc, svc["id"], job, wait=wait, tail=tail, as_json=as_json)


def interrupted(state: State, watch, terminated: bool = False) -> NoReturn:
    """Ctrl-C while waiting: on a terminal ask whether to cancel the job; without one (a script,
    CI) cancel it. Exits 130 either way; a second Ctrl-C exits at once. SIGTERM (a CI step's
    timeout, ``kill``) cancels without asking and exits 143."""
    job = watch.job
    code = exitcodes.TERMINATED if terminated else exitcodes.INTERRUPTED
    if terminated:
        cancel = True
        state.note(f"terminated: canceling {job['id']}")
    elif sys.stdin.isatty():
        click.echo("", err=True)
        try:
            cancel = click.confirm(f"Cancel job {job['id']}?", default=False, err=True)
        except (click.Abort, KeyboardInterrupt, EOFError):
            cancel = False
    else:
        cancel = True
        state.note(f"interrupted: canceling {job['id']} (no terminal to ask)")
    if not cancel:
        state.note(f"{job['id']} keeps running; follow it: oneoff jobs logs -f {job['id']}")
        sys.exit(code)
    try:
        watch.api.post(
            f"/services/{watch.service_id}/jobs/{job['id']}/cancel",
            retry_for=30.0,
            idempotent=True,  # canceling a canceled job answers it unchanged
        )
        state.note(f"canceling {job['id']}")
        watch.job = watch.refresh()
        job = watch.run()  # the end, and with --tail the last lines
        state.note(f"{job['id']} {job['status']}: {describe_end(job)}")
    except KeyboardInterrupt:
        pass
    except ApiError as exc:
        state.note(f"could not cancel {job['id']}: {exc.api_message}")
    sys.exit(code)


@jobs.command("list")
@click.argument("service")
@click.option(
    "--status",
    multiple=True,
    type=click.Choice(["pending", "running", "succeeded", "failed", "canceled"]),
    help="Only these statuses (repeatable).",
)
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The API's job objects, as JSON.")
@pass_state
def jobs_list(state: State, service: str, status: tuple[str, ...], limit: int, as_json: bool):
    """List SERVICE's jobs, newest first."""
    api = state.api
    service_id = service_id_of(api, service)
    params = {"status": ",".join(status) if status else None}
    items = [item["job"] for item in api.pages(f"/services/{service_id}/jobs", params, limit)]
    if as_json:
        print_json(items)
        return
    style = state.style
    rows = [
        [
            j["id"],
            style.status(j["status"]),
            "" if j.get("exitCode") is None else str(j["exitCode"]),
            short_time(j.get("createdAt")),
            duration(j),
            _clip(j.get("startCommand", ""), 48),
        ]
        for j in items
    ]
    table(rows, ["ID", "STATUS", "EXIT", "CREATED", "DURATION", "COMMAND"], style)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


service_option = click.option(
    "--service", "-s", metavar="SERVICE", help="The job's service (id or name): saves a search."
)


@jobs.command("get")
@click.argument("job_id", metavar="JOB")
@service_option
@click.option("--json", "as_json", is_flag=True, help="The API's job object, as JSON.")
@pass_state
def jobs_get(state: State, job_id: str, service: str | None, as_json: bool):
    """Show a job."""
    svc, job = find_job(state.api, job_id, service)
    if as_json:
        print_json(job)
        return
    style = state.style
    status = style.status(job["status"])
    if job["status"] in ("failed", "canceled", "succeeded"):
        status += f" ({describe_end(job)})"
    fields = [
        ("id", job["id"]),
        ("service", f"{svc['name']} ({svc['id']})"),
        ("status", status),
        ("command", job.get("startCommand", "")),
        ("plan", job.get("planId", "")),
        ("created", short_time(job.get("createdAt"))),
        ("started", short_time(job.get("startedAt"))),
        ("finished", short_time(job.get("finishedAt"))),
        ("duration", duration(job)),
        ("cost", f"${job['cost']}" if job.get("cost") else ""),
        ("created by", job.get("createdBy", "")),
        ("image", job.get("imageId", "")),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value:
            click.echo(f"{name.ljust(width)}  {value}", color=style.colour)


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    match = SINCE.match(value)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
        return datetime.now(UTC) - timedelta(**{unit: int(match[1])})
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            "a duration (30s, 10m, 2h, 1d) or a time (2026-03-20T12:00:00Z)", param_hint="--since"
        ) from None
    return stamp if stamp.tzinfo else stamp.astimezone()


@jobs.command("logs")
@click.argument("job_id", metavar="JOB")
@service_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the job ends.")
@click.option("--since", metavar="WHEN", help="Lines from 10m/2h/1d ago, or from a time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON log entry per line.")
@quiet_option
@pass_state
def jobs_logs(
    state: State, job_id: str, service: str | None, follow: bool, since: str | None, as_json: bool
):
    """Print a job's log: its stdout lines to stdout, its stderr lines to stderr."""
    start = parse_since(since)
    svc, job = find_job(state.api, job_id, service)
    from oneoff_cli.watch import Terminated, Watch

    watch = Watch(
        state.api,
        svc["id"],
        job,
        owner_id=svc["ownerId"],
        tail=True,
        follow_until_end=follow,
        since=start,
        retry_for=WAIT_RETRY_FOR if follow else 0.0,
        notes=None if state.quiet else state.note,
        as_json=as_json,
    )
    try:
        watch.run()
    except KeyboardInterrupt as exc:
        sys.exit(exitcodes.TERMINATED if isinstance(exc, Terminated) else exitcodes.INTERRUPTED)


@jobs.command("cancel")
@click.argument("job_id", metavar="JOB")
@service_option
@click.option("--json", "as_json", is_flag=True, help="The API's job object, as JSON.")
@pass_state
def jobs_cancel(state: State, job_id: str, service: str | None, as_json: bool):
    """Cancel a pending or running job."""
    svc, job = find_job(state.api, job_id, service)
    job = state.api.post(f"/services/{svc['id']}/jobs/{job['id']}/cancel")
    if as_json:
        print_json(job)
    elif job["status"] == "canceled":
        click.echo(f"{job['id']} canceled")
    else:
        click.echo(f"{job['id']} is stopping (canceled once its container has stopped)")


# Configuration.


@cli.group("config")
def config_group():
    """The config file ($XDG_CONFIG_HOME/oneoff/config.toml, mode 0600)."""


@config_group.command("set")
@click.argument("name", type=click.Choice(["api-url", "api-key"]))
@click.argument("value", required=False)
def config_set(name: str, value: str | None):
    """Store api-url or api-key (the key is asked for, or read from stdin, when not given)."""
    if value is None:
        if name == "api-url":
            raise click.UsageError("give the URL: oneoff config set api-url https://…")
        import getpass

        value = getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline()
        value = value.strip()
        if not value:
            raise click.UsageError("no key given")
    values = config.read_file()
    values[name.replace("-", "_")] = value
    path = config.write_file(values)
    click.echo(f"{name} stored in {path}")


@config_group.command("show")
@pass_state
def config_show(state: State):
    """Where the URL and key come from (the key itself is never shown)."""
    settings = config.resolve(state.api_url, state.api_key, need_key=False)
    click.echo(f"api-url  {settings.api_url}  (from {settings.url_source})")
    key = f"set (from {settings.key_source})" if settings.api_key else "not set"
    click.echo(f"api-key  {key}")
    click.echo(f"file     {config.config_path()}")


def main() -> NoReturn:
    """The console script: one-line errors and the documented exit codes."""
    try:
        cli.main(prog_name="oneoff", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # UsageError, BadParameter, NoSuchOption, …
        exc.show()
        sys.exit(exitcodes.USAGE)
    except click.Abort:
        click.echo("", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    except CliError as exc:
        click.echo(f"oneoff: error: {exc.message}", err=True)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    except BrokenPipeError:
        # Our reader went away (`| head`): say nothing, on a stdout that can no longer fail.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(exitcodes.JOB_FAILED)
    sys.exit(exitcodes.OK)
