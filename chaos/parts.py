"""The parts the chaos suite runs Oneoff on, every one its own: a PostgreSQL cluster, a Redis
server and a Docker Engine on private ports, sockets and folders under one temporary folder, and
Oneoff's processes (web, the jobs and builds workers, beat) pointed at them, started as the
production units start them (deploy/Procfile, deploy/systemd). The machine's own services are
never touched: every address, socket and folder is made here, and the environment Oneoff sees is
built from scratch for these parts.

Every process is started in a session of its own (so a Ctrl-C in the terminal reaches only the
harness, which stops them in order) and is ended by its id, or its process group's.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's gunicorn and celery
BASE_IMAGE = "oneoff/busybox:latest"  # the base image every workspace may use (BUILD_BASE_IMAGES)
RESTART_SEC = 2.0  # as the systemd units' RestartSec: a crashed Oneoff process is back after it

# Variables of the caller's environment that could point Oneoff at another installation's parts;
# none of them reaches the processes started here.
FOREIGN_PREFIXES = (
    "DATABASE_",
    "CELERY_",
    "CACHE_",
    "DOCKER_",
    "ONEOFF_",
    "BROKER_",
    "JOB_",
    "BUILD_",
    "LOG_STREAM_",
    "API_RATE_",
    "API_KEYS_",
    "REDIS_",
    "EGRESS_",
    "WORKER_",
)
FOREIGN = {"SECRET_KEY", "FIELD_ENCRYPTION_KEY", "ENV_DIGEST_KEY", "TEST_DATABASE_NAME", "DEBUG"}


class PartError(RuntimeError):
    """A part did not start or answer in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every=0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise PartError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def clean_environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(FOREIGN_PREFIXES) and k not in FOREIGN
    }


class Proc:
    """A long-running process with its output in a log file, in a session of its own.

    ``expected_down`` says the harness stopped it on purpose; a process that ends otherwise is a
    crash (see ``Oneoff.watch``)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log: Path,
        ready: tuple[str, ...] = (),
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.ready_markers = ready
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.offset = 0
        self.starts = 0
        self.expected_down = True
        self.lock = threading.RLock()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def start(self) -> Proc:
        with self.lock:
            if self.alive:
                return self
            self.starts += 1
            with open(self.log, "ab") as out:
                out.write(f"\n=== chaos: start {self.starts} of {self.name}\n".encode())
                out.flush()
                self.offset = out.tell()
                self.popen = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.expected_down = False
        return self

    def output(self) -> str:
        """What it printed since its last start."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self.offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> Proc:
        def ready() -> bool:
            if not self.alive:
                raise PartError(f"{self.name} exited at start:\n{self.tail()}")
            text = self.output()
            return all(marker in text for marker in self.ready_markers)

        wait_until(ready, timeout, f"{self.name} to be ready")
        return self

    def _signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL to its process group: no cleanup of any kind, as when a machine loses power."""
        with self.lock:
            self.expected_down = True
            if self.alive:
                self._signal_group(signal.SIGKILL)
                assert self.popen is not None
                self.popen.wait(30)

    def stop(self, timeout: float = 20.0, *, group: bool = True) -> None:
        """SIGTERM (to the group, or the process alone), then SIGKILL after ``timeout``."""
        with self.lock:
            self.expected_down = True
            if not self.alive:
                return
            assert self.popen is not None
            if group:
                self._signal_group(signal.SIGTERM)
            else:
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(30)

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Postgres:
    """A PostgreSQL cluster of its own (initdb in the temporary folder, a private port, no unix
    socket). As root, its commands run as the ``postgres`` user, which owns its folder."""

    def __init__(self, root: Path) -> None:
        versions = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"),
            key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        )
        if not versions:
            raise PartError("PostgreSQL's server is not installed (apt-get install postgresql)")
        self.bin = versions[-1].parent
        self.dir = root / "postgres"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()

    def _run(self, *argv: str, timeout: float = 90) -> None:
        command = [str(a) for a in argv]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
        if result.returncode:
            raise PartError(f"{' '.join(command)}: {result.stderr.strip() or result.stdout}")

    def _pg_ctl(self, *args: str) -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            *args,
        )  # fmt: skip

    def init(self) -> Postgres:
        self.dir.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        # Durability is not what is tested here (nothing crashes the machine): fsync off keeps the
        # suite quick on a shared disk. Connections: web threads, the worker's followers, load.
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\nmax_connections = 300\nfsync = off\n"
                "full_page_writes = off\nsynchronous_commit = off\n"
            )
        return self

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def teardown(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                self.stop("immediate")


class Redis:
    """A Redis server of its own on a private port. It saves to its folder on shutdown like
    Debian's packaged configuration (save points, no AOF), so a restart keeps queued messages."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.dir.mkdir()
        self.port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise PartError("redis-server is not installed (apt-get install redis-server)")
        argv = [
            binary,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "3600 1 300 100 60 10000", "--appendonly", "no",
            "--daemonize", "no", "--logfile", "",
        ]  # fmt: skip
        self.proc = Proc(
            "redis",
            argv,
            env=clean_environment(),
            log=self.dir / "redis.log",
            ready=("Ready to accept connections",),
        )

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.proc.start().wait_ready(30)

    def stop(self) -> None:
        self.proc.stop(30, group=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def teardown(self) -> None:
        self.proc.stop(10)


class Engine:
    """A Docker Engine of its own: its own socket, data and exec roots and pid file, without bridge
    networking, with ``--live-restore`` (containers keep running while it restarts)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "docker"
        self.dir.mkdir()
        self.socket = self.dir / "docker.sock"
        self.host = f"unix://{self.socket}"
        binary = shutil.which("dockerd")
        if binary is None:
            raise PartError("dockerd is not installed (apt-get install docker.io)")
        argv = [
            binary,
            "--host", self.host,
            "--data-root", str(self.dir / "data"),
            "--exec-root", str(self.dir / "exec"),
            "--pidfile", str(self.dir / "docker.pid"),
            "--bridge=none", "--iptables=false", "--ip-forward=false", "--live-restore",
        ]  # fmt: skip
        self.proc = Proc("dockerd", argv, env=clean_environment(), log=self.dir / "dockerd.log")

    def client(self, timeout: int = 30) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=timeout)

    def answers(self) -> bool:
        try:
            with contextlib.closing(self.client(5)) as client:
                return bool(client.ping())
        except Exception:
            return False

    def start(self) -> None:
        self.proc.start()

        def up() -> bool:
            if not self.proc.alive:
                raise PartError(f"dockerd exited at start:\n{self.proc.tail()}")
            return self.answers()

        wait_until(up, 60, "the private Docker Engine to answer")

    def stop(self) -> None:
        """SIGTERM to dockerd alone (it stops its containerd; the containers live on)."""
        self.proc.stop(40, group=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def import_base_image(self) -> None:
        """Oneoff's base image, made offline from Debian's busybox (as `make run` makes it)."""
        rootfs = self.dir / "busybox-rootfs"
        subprocess.run(
            [str(ROOT / "scripts" / "make-busybox-image.sh"), BASE_IMAGE],
            env={**clean_environment(), "DOCKER_HOST": self.host, "ROOTFS": str(rootfs)},
            check=True,
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(rootfs, ignore_errors=True)

    def teardown(self) -> None:
        if self.proc.alive or self.answers():
            with contextlib.suppress(Exception), contextlib.closing(self.client(20)) as client:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
        self.proc.stop(30, group=False)


def end_leftovers(root: Path) -> None:
    """Processes whose command line names this suite's folder and outlived their parent (the
    engine's containerd and container shims): ended by their ids; then the engine's mounts."""
    marker = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    for mount in sorted((m for m in mounts if m.startswith(marker)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


@dataclass
class Crash:
    """An Oneoff process that ended without being asked to."""

    at: float
    name: str
    returncode: int | None
    last_lines: str


@dataclass
class Oneoff:
    """Oneoff's web, workers and beat on the given database, broker and cache (``""``: the
    embedded defaults, as ``make run`` has them), with a folder of their own."""

    name: str
    root: Path
    database_url: str
    broker_url: str
    cache_url: str
    docker_host: str
    extra_env: dict[str, str] = field(default_factory=dict)
    crashes: list[Crash] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir = self.root / self.name
        self.var = self.dir / "var"
        self.var.mkdir(parents=True, mode=0o700)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.instance = f"chaos-{self.name}-{secrets.token_hex(4)}"
        env = clean_environment()
        env.update(
            {
                # The code under test is this checkout's, whatever the virtualenv was made from.
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": self.database_url,
                "CELERY_BROKER_URL": self.broker_url,
                "CACHE_URL": self.cache_url,
                "DOCKER_HOST": self.docker_host,
                "ONEOFF_VAR_DIR": str(self.var),
                "ONEOFF_INSTANCE": self.instance,
                "RUNNER_HOST": f"chaos-{self.name}",
                "SITE_URL": self.base_url,
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "JOB_STOP_GRACE": "2",
                # The log-stream trial's receiver listens on loopback (services.egress).
                "EGRESS_ALLOW": "127.0.0.1",
                "LOG_LEVEL": "INFO",
                # The suite makes far more requests than Render's default rates allow.
                **{
                    f"API_RATE_LIMIT_{who}{kind}": "1000000/m"
                    for who in ("", "USER_", "WORKSPACE_")
                    for kind in ("JOB_CREATE", "READ", "WRITE")
                },
                **self.extra_env,
            }
        )
        self.env = env
        self.web = Proc(
            "web",
            [
                str(BIN / "gunicorn"), "config.asgi", "--config", "config/gunicorn.py",
                "--bind", f"127.0.0.1:{self.port}",
            ],
            env=env,
            log=self.dir / "web.log",
        )  # fmt: skip
        # Two workers, one per queue, as deploy/Procfile and scripts/run.sh run them: job starts
        # and the supervisor (the worker the trials kill), and builds.
        self.worker = Proc(
            "worker",
            [
                str(BIN / "celery"), "-A", "config", "worker", "-Q", "jobs",
                "-n", f"jobs-{self.instance}@%h", "--loglevel=INFO",
                "--without-mingle", "--without-gossip",
            ],
            env=env,
            log=self.dir / "worker.log",
            ready=(" ready.", "supervisor running"),
        )  # fmt: skip
        self.builder = Proc(
            "builder",
            [
                str(BIN / "celery"), "-A", "config", "worker", "-Q", "builds",
                "-n", f"builds-{self.instance}@%h", "--loglevel=INFO",
                "--without-mingle", "--without-gossip",
            ],
            env=env,
            log=self.dir / "builder.log",
            ready=(" ready.",),
        )  # fmt: skip
        self.beat = Proc(
            "beat",
            [str(BIN / "celery"), "-A", "config", "beat", "--loglevel=INFO"],
            env=env,
            log=self.dir / "beat.log",
        )
        self.procs = [self.web, self.worker, self.builder, self.beat]
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    def manage(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
        if result.returncode:
            raise PartError(f"manage.py {' '.join(args)}: {result.stderr[-2000:]}")
        return result.stdout

    def setup(self) -> str:
        """Migrate and make the workspace, its admin and an API key (returned)."""
        self.manage("migrate", "--no-input")
        return self.manage("createapikey", "chaos@example.com", "--workspace", "Chaos").split()[-1]

    def web_answers(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=5) as response:
                return bool(response.status == 200)
        except Exception:
            return False

    def wait_web(self, timeout: float = 90) -> None:
        def up() -> bool:
            if not self.web.alive:
                raise PartError(f"web exited:\n{self.web.tail()}")
            return self.web_answers()

        wait_until(up, timeout, "Oneoff's web to answer")

    def start(self) -> None:
        for proc in self.procs:
            proc.start()
        self.worker.wait_ready(120)
        self.builder.wait_ready(120)
        self.wait_web()
        if self._watcher is None:
            self._watching.set()
            self._watcher = threading.Thread(target=self.watch, name="chaos-watch", daemon=True)
            self._watcher.start()

    def watch(self) -> None:
        """As the systemd units' ``Restart=always``: a process that ended without being asked
        to is recorded as a crash and started again after RESTART_SEC."""
        while self._watching.is_set():
            for proc in self.procs:
                with proc.lock:
                    if proc.expected_down or proc.alive or proc.popen is None:
                        continue
                    self.crashes.append(
                        Crash(time.time(), proc.name, proc.returncode, proc.tail(12))
                    )
                    proc.expected_down = True  # until restarted below
                threading.Thread(target=self._restart_later, args=(proc,), daemon=True).start()
            time.sleep(0.5)

    def _restart_later(self, proc: Proc) -> None:
        time.sleep(RESTART_SEC)
        with proc.lock:
            if self._watching.is_set() and not proc.alive and proc.expected_down:
                proc.start()

    def ensure_running(self) -> None:
        """Before a run: every process up (one may be waiting for its restart)."""
        for proc in self.procs:
            with proc.lock:
                if not proc.alive:
                    proc.start()
        self.worker.wait_ready(120)
        self.wait_web()

    def teardown(self) -> None:
        self._watching.clear()
        for proc in (self.beat, self.web, self.builder, self.worker):
            proc.stop(20)


@dataclass
class Parts:
    """Everything the suite runs on, made in one temporary folder and torn down with it."""

    keep: bool = False
    root: Path = field(init=False)
    postgres: Postgres = field(init=False)
    redis: Redis = field(init=False)
    engine: Engine = field(init=False)
    stacks: list[Oneoff] = field(default_factory=list)
    ca_file: str = ""  # trusted by log-stream forwarding (LOG_STREAM_CA_FILE)
    server_pem: str = ""  # the log-stream receiver's certificate and key

    def __post_init__(self) -> None:
        self.root = Path(os.path.realpath(tempfile.mkdtemp(prefix="oneoff-chaos-")))
        self.root.chmod(0o711)  # the postgres user must reach its folder inside

    def start_services(self, log: Callable[[str], None]) -> None:
        log(f"parts in {self.root}")
        self.postgres = Postgres(self.root).init()
        self.postgres.start()
        log(f"PostgreSQL on 127.0.0.1:{self.postgres.port}")
        self.redis = Redis(self.root)
        self.redis.start()
        log(f"Redis on 127.0.0.1:{self.redis.port}")
        self.engine = Engine(self.root)
        self.engine.start()
        self.engine.import_base_image()
        log(f"Docker Engine on {self.engine.host} (live-restore), {BASE_IMAGE} imported")

    def production(self, extra_env: dict[str, str]) -> Oneoff:
        """Oneoff on the private PostgreSQL, Redis (broker db 0, cache db 1) and engine."""
        self.postgres.create_database("oneoff")
        stack = Oneoff(
            "prod",
            self.root,
            database_url=self.postgres.url("oneoff"),
            broker_url=self.redis.url(0),
            cache_url=self.redis.url(1),
            docker_host=self.engine.host,
            extra_env=extra_env,
        )
        self.stacks.append(stack)
        return stack

    def embedded(self, extra_env: dict[str, str]) -> Oneoff:
        """Oneoff on the embedded defaults of ``make run``: SQLite in its var folder, kombu's
        filesystem broker there, the database cache; the private engine."""
        var = self.root / "embedded" / "var"
        stack = Oneoff(
            "embedded",
            self.root,
            database_url=f"sqlite:///{var / 'oneoff.sqlite3'}",
            broker_url="filesystem://localhost/",
            cache_url="",
            docker_host=self.engine.host,
            extra_env=extra_env,
        )
        self.stacks.append(stack)
        return stack

    def teardown(self) -> None:
        for stack in self.stacks:
            with contextlib.suppress(Exception):
                stack.teardown()
        for part in ("engine", "redis", "postgres"):
            if hasattr(self, part):
                with contextlib.suppress(Exception):
                    getattr(self, part).teardown()
        end_leftovers(self.root)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def interrupts_as_exit() -> Iterator[None]:
    """SIGINT (also when a shell started the suite in the background, which ignores it),
    SIGTERM and SIGHUP end the suite as Ctrl-C does, so the teardown always runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
