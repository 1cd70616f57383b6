"""Following a container's log into the database, and resuming without gap or duplicate.

A follower reads messages from the job's cursor on (``jobs.logs.store``): the endpoint's
``since`` is inclusive, and the json-file (its pieces, when Docker rotates it: ``jobs.logs.files``)
is entered by bisection a little before the cursor's time; the writer skips those up to the
cursor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from django.db import connection
from docker import DockerClient
from docker.errors import APIError, DockerException
from requests import RequestException, Response

from jobs.logs.engine import (
    json_file_path,
    json_file_piece_bytes,
    json_file_pieces,
    open_log_stream,
    raw_chunks,
)
from jobs.logs.files import LogFiles
from jobs.logs.parse import FrameParser, JsonBlock, JsonFileParser
from jobs.logs.store import FLUSH_RETRY_FOR, Batch, LogWriter

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25  # seconds: stored lines are at most this old (plus one INSERT)
# Parsed chunks between a follower's reader and writer: each from a 64 KiB file read, or up to
# 256 KiB of the endpoint's stream.
QUEUE_CHUNKS = 64
# … and the bytes of all of them in one process: with many chatty jobs at once (the database
# behind them all) every follower's queue would fill, 50 jobs holding 50 x 64 chunks.
QUEUE_BYTES = 24 * 1024 * 1024


class QueueBudget:
    """Bytes of log data waiting in the queues of this process's followers, bounded: a reader
    waits for room, except when its own queue is empty (each follower always moves on)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.changed = threading.Condition()

    def take(self, size: int, timeout: float, alone: bool) -> bool:
        with self.changed:
            if self.used + size > self.limit and not alone:
                self.changed.wait(timeout)
                if self.used + size > self.limit:
                    return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        if size:
            with self.changed:
                self.used -= size
                self.changed.notify_all()


BUDGET = QueueBudget(QUEUE_BYTES)


def item_bytes(item: list[tuple[int, int, bytes]] | JsonBlock | None) -> int:
    """About what a queued item holds in memory."""
    if item is None:
        return 0
    if isinstance(item, JsonBlock):
        return len(item.data)
    return sum(len(payload) + 100 for _, _, payload in item)


RESUME_MARGIN_NS = 1_000_000_000  # stdout and stderr are stamped apart: a little disorder
# Seconds between attempts to reach an engine that went away (restarting) while a job runs.
ENGINE_RETRY_MIN = 0.2
ENGINE_RETRY_MAX = 2.0


def seek_to_time(log_file: BinaryIO, ts_ns: int) -> None:
    """Move a json-file log to a line start at or before the first line stamped ``ts_ns`` or
    later, by bisection (lines are in time order, give or take the margin the caller leaves): a
    follower resuming a long log does not read it all again."""
    lo, hi = 0, os.fstat(log_file.fileno()).st_size
    while hi - lo > 64 * 1024:
        mid = (lo + hi) // 2
        log_file.seek(mid)
        log_file.readline()  # the rest of the line the probe fell in
        messages = JsonFileParser().feed(log_file.readline())  # the next whole line
        if messages and messages[0][0] < ts_ns:
            lo = mid
        else:
            hi = mid
    log_file.seek(lo)
    if lo:
        log_file.readline()


def open_from_start(client: DockerClient, attrs: dict) -> LogFiles | None:
    """A container's json-file log opened from its first piece, right after it started (None
    when this process cannot read it: ``json_file_path``), for ``LogFollower(files=…)``."""
    path = json_file_path(client, attrs)
    if not path:
        return None
    files = LogFiles(path, json_file_pieces(attrs), json_file_piece_bytes(attrs))
    try:
        files.open(0)
    except OSError:
        files.close()
        return None
    return files


class LogFollower(threading.Thread):
    """Follows one container's logs into the database until the container exited.

    Two threads: this one reads and parses the log into a bounded queue (back-pressure keeps
    memory bounded when the database is slower than the job, and ``BUDGET`` bounds the queues of
    all followers in the process together); a writer drains it and flushes at
    least every FLUSH_INTERVAL. ``done`` is set when everything Docker had was stored, ``error``
    when it stopped early (the supervisor then starts a new follower, which resumes).

    The log is read from the container's json-file when this process can (``json_file_path``),
    else from the engine's logs endpoint; both give the same messages.
    """

    FILE_BLOCK = 64 * 1024  # with QUEUE_CHUNKS: a follower holds at most ~8 MB of parsed lines
    FILE_POLL = 0.05  # seconds between reads at the end of a quiet running container's log file
    FILE_POLL_MIN = 0.005  # … and of one that just printed
    # Seconds between looks for rotated pieces while the writer is behind (the queue full): a
    # job printing flat out rotates a small log's pieces within milliseconds.
    PUT_WAIT = 0.01

    def __init__(
        self,
        job_id: str,
        container_id: str,
        client_factory: Callable[[], DockerClient],
        files: LogFiles | None = None,
    ):
        """``files``: the container's json-file, already opened (``open_from_start``) by the
        thread that started it; the follower reads it at once, before anything else."""
        super().__init__(name=f"logs-{job_id}", daemon=True)
        self.opened = files
        self.job_id = job_id
        self.container_id = container_id
        self.client_factory = client_factory
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.queued = 0  # bytes of this follower in its queue (and in BUDGET)
        self.queued_lock = threading.Lock()
        self.done = False
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.response: Response | None = None
        self.source = ""  # "file" or "api", once chosen
        self.files: LogFiles | None = None  # the json-file's pieces, while reading them
        self.put_wait = self.PUT_WAIT
        self.engine_gone = False  # the engine stopped answering while this follower ran

    def run(self) -> None:
        writer_thread = None
        client = None
        try:
            if self.opened is not None:
                # From the container's start: read at once (the writer gets ready meanwhile,
                # and resumes past anything already stored, should there be any).
                self.source = "file"
                logger.info("following the log of %s from %s", self.job_id, self.opened.path)
                writer_thread = threading.Thread(
                    target=self._write, args=(None,), name=f"logw-{self.job_id}", daemon=True
                )
                writer_thread.start()
                self._follow_file(0, self.opened, opened=True)
                self._put(None)
                writer_thread.join()
                if self.error is None and not self.stopping.is_set():
                    self.done = True
                return
            writer = LogWriter.for_job(self.job_id)
            writer_thread = threading.Thread(
                target=self._write, args=(writer,), name=f"logw-{self.job_id}", daemon=True
            )
            writer_thread.start()
            client = self.client_factory()
            attrs = client.api.inspect_container(self.container_id)
            path = json_file_path(client, attrs)
            self.source = "file" if path else "api"
            logger.info(
                "following the log of %s from %s",
                self.job_id,
                path if path else "the engine's logs endpoint",
            )
            if path:
                rotation = LogFiles(path, json_file_pieces(attrs), json_file_piece_bytes(attrs))
                self._follow_file(writer.cursor_ns, rotation)
            else:
                self._follow_api(client, writer)
            self._put(None)
            writer_thread.join()
            if self.error is None and not self.stopping.is_set():
                if self.source == "api":
                    # Docker's json-file follower can end a moment before the last lines of a
                    # container that just exited: read once more, without follow, from the cursor.
                    self._drain(client)
                self.done = True
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            if not self.stopping.is_set():
                logger.warning("log follower for %s stopped: %r", self.job_id, exc)
            self._put(None)
            if writer_thread is not None:
                writer_thread.join(timeout=10)
        finally:
            if writer_thread is None or not writer_thread.is_alive():
                self._drain_queue()  # what a writer that stopped early left: back to BUDGET
            if self.opened is not None:
                self.opened.close()  # unless _follow_file already did
            if self.response is not None:
                self.response.close()
            if client is not None:
                client.close()
            connection.close()

    def _follow_api(self, client: DockerClient, writer: LogWriter) -> None:
        self.response = open_log_stream(client, self.container_id, writer.since)
        parser = FrameParser()
        for chunk in raw_chunks(self.response):
            if self.stopping.is_set() or self.error is not None:
                break
            messages = parser.feed(chunk)
            if messages:
                self._put(messages)

    def _follow_file(self, since_ns: int, files: LogFiles, opened: bool = False) -> None:
        """Tail the json-file, across its rotation (``LogFiles``), until the engine says the
        container exited, then read to its end.

        The engine closes the file before it reports the exit, so that last read is complete.
        The writer skips what a previous follower stored (the cursor), as with the endpoint.
        """
        exited = threading.Event()
        wait_error: list[BaseException] = []

        def wait_for_exit() -> None:
            # The engine going away (a restart) cuts this wait, not the container: with
            # live-restore it runs on, and the file open here is the one the engine appends to
            # when it is back. So wait for the engine to answer again, and go on reading the
            # same file from where it was: no gap, no line read twice.
            delay = ENGINE_RETRY_MIN
            try:
                while not self.stopping.is_set():
                    waiter = None
                    try:
                        waiter = self.client_factory()
                        waiter.api.wait(self.container_id, timeout=None)
                        return
                    except APIError as exc:  # the engine answered: no such container, …
                        wait_error.append(exc)
                        return
                    except (DockerException, RequestException, OSError) as exc:
                        if delay == ENGINE_RETRY_MIN:
                            logger.warning(
                                "the Docker Engine went away while %s runs (%r); following its "
                                "log file on until the engine is back",
                                self.job_id,
                                exc,
                            )
                        self.engine_gone = True
                        self.stopping.wait(delay)
                        delay = min(delay * 2, ENGINE_RETRY_MAX)
                    except BaseException as exc:
                        wait_error.append(exc)
                        return
                    finally:
                        if waiter is not None:
                            waiter.close()
            finally:
                exited.set()

        threading.Thread(target=wait_for_exit, name=f"wait-{self.job_id}", daemon=True).start()
        self.files = files
        longest_poll = files.look_within(self.FILE_POLL)
        self.put_wait = min(self.PUT_WAIT, longest_poll)
        try:
            if not opened:
                files.open(since_ns - RESUME_MARGIN_NS if since_ns else 0)
            assert files.current is not None
            if since_ns:
                seek_to_time(files.current, since_ns - RESUME_MARGIN_NS)
            parser = JsonFileParser()
            poll = min(self.FILE_POLL_MIN, longest_poll)
            while not self.stopping.is_set() and self.error is None:
                data = files.read(self.FILE_BLOCK)
                if data:
                    for item in parser.feed_blocks(data):
                        self._put(item)
                    files.scan()  # a stat when nothing rotated: cheap next to parsing a block
                    poll = min(self.FILE_POLL_MIN, longest_poll)
                    continue
                files.scan()
                if files.advance():  # the piece read is complete: on with the next one
                    parser = JsonFileParser()
                    continue
                if exited.is_set():
                    if wait_error:
                        raise wait_error[0]
                    files.scan()
                    while True:
                        while data := files.read(self.FILE_BLOCK):
                            for item in parser.feed_blocks(data):
                                self._put(item)
                        if not files.advance():
                            return
                        parser = JsonFileParser()
                exited.wait(poll)
                # Soon again while the job prints (its pieces may rotate within milliseconds),
                # backing off to FILE_POLL while it is quiet.
                poll = min(poll * 2, longest_poll)
        finally:
            self.files = None
            files.close()

    def _drain(self, client: DockerClient) -> None:
        writer = LogWriter.for_job(self.job_id)
        response = open_log_stream(client, self.container_id, writer.since, follow=False)
        try:
            parser = FrameParser()
            for chunk in raw_chunks(response):
                writer.add_batch(parser.feed(chunk))
                if writer.should_flush:
                    writer.flush()
            writer.finish()
        finally:
            response.close()

    def _put(self, item: list[tuple[int, int, bytes]] | JsonBlock | None) -> None:
        size = item_bytes(item)
        while size and not BUDGET.take(size, self.put_wait, alone=self.queued == 0):
            if self.error is not None or self.stopping.is_set():
                return
            files = self.files
            if files is not None:
                files.scan()  # the writers are behind: keep hold of the pieces Docker rotates
        with self.queued_lock:
            self.queued += size
        while True:
            try:
                self.queue.put((item, size), timeout=self.put_wait)
                return
            except queue.Full:
                if self.error is not None or self.stopping.is_set():
                    self._gave(size)
                    return
                files = self.files
                if files is not None:
                    # The writer is behind: keep hold of the pieces Docker rotates meanwhile.
                    files.scan()

    def _get(self, timeout: float) -> list[tuple[int, int, bytes]] | JsonBlock | None:
        item, size = self.queue.get(timeout=timeout)
        self._gave(size)
        return item

    def _gave(self, size: int) -> None:
        if size:
            with self.queued_lock:
                self.queued -= size
            BUDGET.give(size)

    def _drain_queue(self) -> None:
        """Empty the queue (its bytes back to BUDGET): the writer stopped."""
        while True:
            try:
                self._get(0)
            except queue.Empty:
                return

    def stop(self) -> None:
        self.stopping.set()
        if self.response is not None:
            try:
                self.response.close()
            except Exception:
                logger.debug("closing the log stream of %s", self.job_id, exc_info=True)

    def _write(self, writer: LogWriter | None) -> None:
        """Make batches of the parsed chunks (``LogWriter.add_batch``: cleaning, masking, COPY
        rows) and hand each to a third thread that stores it (``LogWriter.store``), so that the
        next batch is made while the database works on this one. At most one batch is stored
        while one is made: memory stays bounded."""
        batches: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        failed: list[BaseException] = []  # the storer's error, if it stopped
        storer: threading.Thread | None = None
        try:

            def ready() -> tuple[LogWriter, threading.Thread]:
                """The writer (None: made here, at the first lines) and the storing thread."""
                made = writer if writer is not None else LogWriter.for_job(self.job_id)
                thread = threading.Thread(
                    target=self._store_batches,
                    args=(made, batches, failed),
                    name=f"logdb-{self.job_id}",
                    daemon=True,
                )
                thread.start()
                return made, thread

            def hand(batch: Batch | None) -> None:
                batches.join()  # the batch before is stored (or the storer stopped)
                if failed:
                    raise StorerStopped
                batches.put(batch)

            if writer is not None:
                writer, storer = ready()
            deadline = time.monotonic() + FLUSH_INTERVAL
            while True:
                timeout = max(0.0, deadline - time.monotonic())
                try:
                    item = self._get(timeout)
                except queue.Empty:
                    item = []
                if writer is None or storer is None:
                    # Followed from its start (``files``): no writer until there is something
                    # to write. A job that prints nothing reads no cursor, opens no database
                    # connection and starts no storing thread.
                    if item is None:
                        return  # the log ended with nothing in it
                    if not isinstance(item, JsonBlock) and not item:
                        deadline = time.monotonic() + FLUSH_INTERVAL
                        continue
                    writer, storer = ready()
                if item is None:
                    writer.release()
                    last = writer.take()
                    if last is not None:
                        hand(last)
                    hand(None)
                    storer.join()
                    if failed:
                        raise StorerStopped
                    return
                writer.add_batch(item)
                if writer.should_flush or time.monotonic() >= deadline:
                    batch = writer.take()
                    if batch is not None:
                        hand(batch)
                    deadline = time.monotonic() + FLUSH_INTERVAL
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            self.stop()
            # Unblock the reader if it waits on a full queue, and the storer.
            self._drain_queue()
            if storer is not None and storer.is_alive():
                with contextlib.suppress(queue.Full):
                    batches.put(None, timeout=FLUSH_RETRY_FOR + 10)
        finally:
            connection.close()

    def _store_batches(
        self,
        writer: LogWriter,
        batches: queue.Queue[Batch | None],
        failed: list[BaseException],
    ) -> None:
        """The storing thread: stores each batch handed to it, in order, until None."""
        try:
            while True:
                batch = batches.get()
                try:
                    if batch is None:
                        return
                    writer.store(batch)
                except BaseException as exc:
                    # The writer sees it before it hands another batch (none is waiting:
                    # it hands one only once the one before is stored).
                    failed.append(exc)
                    if self.error is None:
                        self.error = exc
                    self.stop()
                    return
                finally:
                    batches.task_done()
        finally:
            connection.close()


class StorerStopped(Exception):
    """The follower's storing thread stopped (its error is the follower's)."""
