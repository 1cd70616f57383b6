"""Reading a json-file log across Docker's rotation (jobs.logs.files), against a writer that
rotates exactly as Docker's json-file driver does (close, rename ``path.{i}`` to ``path.{i+1}``
with the last one replaced, rename ``path`` to ``path.1``, open a new ``path``). The real
engine's rotation is exercised by tests/jobs/test_job_limits.py."""

import gc
import os
from datetime import UTC, datetime

from jobs.logs.files import LogFiles
from jobs.logs.parse import JsonFileParser

BASE_NS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


def stamp(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{moment}.{nanos:09d}Z"


class DockerJsonFile:
    """Docker's json-file driver with max-size and max-file, one message at a time."""

    def __init__(self, path, pieces: int, max_size: int):
        self.path, self.pieces, self.max_size = str(path), pieces, max_size
        self.file = open(self.path, "ab")
        self.size = 0
        self.count = 0
        self.rotations = 0

    def write(self) -> None:
        if self.size >= self.max_size:
            self.rotate()
        self.count += 1
        line = (
            f'{{"log":"line {self.count}\\n","stream":"stdout",'
            f'"time":"{stamp(BASE_NS + self.count * 1000)}"}}\n'
        ).encode()
        self.file.write(line)
        self.file.flush()
        self.size += len(line)

    def rotate(self) -> None:
        self.file.close()
        for i in range(self.pieces - 1, 1, -1):
            if os.path.exists(f"{self.path}.{i - 1}"):
                os.replace(f"{self.path}.{i - 1}", f"{self.path}.{i}")
        os.replace(self.path, f"{self.path}.1")
        self.file = open(self.path, "wb")
        self.size = 0
        self.rotations += 1

    def on_disk(self) -> int:
        names = [self.path] + [f"{self.path}.{i}" for i in range(1, self.pieces)]
        return sum(os.path.getsize(n) for n in names if os.path.exists(n))


class Reader:
    def __init__(self, path, pieces: int, since_ns: int = 0):
        self.files = LogFiles(str(path), pieces)
        self.files.open(since_ns)
        self.parser = JsonFileParser()
        self.numbers: list[int] = []

    def read_some(self, blocks: int = 1, size: int = 4096) -> None:
        for _ in range(blocks):
            data = self.files.read(size)
            if not data:
                self.files.scan()
                if not self.files.advance():
                    return
                self.parser = JsonFileParser()
                continue
            for _, _, payload in self.parser.feed(data):
                self.numbers.append(int(payload.split()[-1]))
            self.files.scan()

    def read_all(self) -> None:
        while True:
            before = len(self.numbers), self.files.current
            self.read_some(64)
            if (len(self.numbers), self.files.current) == before:
                return


def test_a_reader_that_looks_between_rotations_reads_every_line_in_order(tmp_path):
    log = DockerJsonFile(tmp_path / "c-json.log", pieces=3, max_size=2000)
    reader = Reader(log.path, 3)
    for i in range(5000):
        log.write()
        if i % 7 == 0:
            reader.read_some(size=300)  # slower than the writer, but it looks at every rotation
        else:
            reader.files.scan()
    assert len(reader.numbers) < 2500  # far behind: the pieces it reads were rotated away
    reader.read_all()
    assert log.rotations > 100
    assert reader.numbers == list(range(1, 5001))
    assert reader.files.gaps == 0
    # The named pieces stay within max-file pieces of max-size (plus one message each).
    assert log.on_disk() <= 3 * (2000 + 100)
    reader.files.close()


def test_pieces_removed_by_rotation_are_still_read_once_seen(tmp_path):
    log = DockerJsonFile(tmp_path / "c-json.log", pieces=2, max_size=1000)
    reader = Reader(log.path, 2)
    for _ in range(3000):  # far more rotations than pieces, and nothing read meanwhile
        log.write()
        reader.files.scan()
    assert len(reader.files.newer) > 10  # held, though Docker removed them
    reader.read_all()
    assert reader.numbers == list(range(1, 3001))
    assert reader.files.gaps == 0
    reader.files.close()


def test_a_reader_that_stops_looking_misses_pieces_and_says_so(tmp_path):
    log = DockerJsonFile(tmp_path / "c-json.log", pieces=2, max_size=1000)
    reader = Reader(log.path, 2)
    for _ in range(500):  # many rotations while the reader neither reads nor looks
        log.write()
    reader.read_all()
    assert reader.files.gaps == 1
    assert reader.numbers[:5] == [1, 2, 3, 4, 5]  # its first piece, held from the start
    assert reader.numbers[-1] == 500
    assert len(reader.numbers) < 500
    assert reader.numbers == sorted(reader.numbers)
    reader.files.close()


def test_a_resuming_reader_starts_in_the_piece_holding_its_cursor(tmp_path):
    log = DockerJsonFile(tmp_path / "c-json.log", pieces=4, max_size=1000)
    for _ in range(40):
        log.write()
    assert log.rotations == 3  # four pieces: path.3 (oldest) … path
    since = BASE_NS + 25 * 1000  # line 25's time
    reader = Reader(log.path, 4, since_ns=since)
    reader.read_all()
    assert reader.numbers[0] <= 25
    assert reader.numbers[0] > 10  # the older pieces were skipped
    assert reader.numbers == list(range(reader.numbers[0], 41))
    reader.files.close()


def test_an_unrotated_log_is_one_piece(tmp_path):
    log = DockerJsonFile(tmp_path / "c-json.log", pieces=1, max_size=10**9)
    reader = Reader(log.path, 1)
    for _ in range(100):
        log.write()
    reader.read_all()
    assert reader.numbers == list(range(1, 101))
    reader.files.close()


def test_the_supervisor_puts_the_startup_heap_out_of_the_collectors_reach(monkeypatch):
    """A full collection walks every tracked object with the GIL held; over a worker's startup heap
    that stopped the log followers for up to a second on a loaded machine, and Docker rotated a
    busy job's pieces away meanwhile (test_job_limits' exact byte count failed in CI). Starting the
    supervisor freezes that heap."""
    from jobs import runner, supervisor

    class Idle:
        starting = launched = follow_now = None

        def __init__(self, interval: float) -> None:
            pass

        def start(self) -> None:
            pass

        def is_alive(self) -> bool:
            return True

    monkeypatch.setattr(supervisor, "Supervisor", Idle)
    monkeypatch.setattr(supervisor, "_supervisor", None)
    monkeypatch.setattr(runner, "on_starting", None)
    monkeypatch.setattr(runner, "on_launched", None)
    monkeypatch.setattr(runner, "on_started", None)
    gc.unfreeze()
    try:
        supervisor.start_supervisor()
        assert gc.get_freeze_count() > 10_000  # Django, pytest and the rest, as in a worker
    finally:
        gc.unfreeze()
