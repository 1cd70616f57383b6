"""Public ids: a prefix and 20 characters of ``[0-9a-v]``, time-ordered like rs/xid.

The 12 raw bytes are a 4-byte big-endian Unix time in seconds, 5 random bytes chosen once per
process, and a 3-byte counter that starts at a random value. Encoded in lowercase base32hex
(whose alphabet sorts like the bytes), ids from one process sort by creation, and ids from
different seconds sort by time whatever process made them.
"""

import os
import re
import threading
import time

ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_TAIL = re.compile(r"^[0-9a-v]{20}$")

_lock = threading.Lock()
_process_bytes = b""
_pid = 0
_counter = 0


def _reset_for_process() -> None:
    global _process_bytes, _pid, _counter
    _process_bytes = os.urandom(5)
    _pid = os.getpid()
    _counter = int.from_bytes(os.urandom(3), "big")


def _encode(raw: bytes) -> str:
    # 96 bits padded to 100 at the end, as xid does, so the leading digits are the time
    number = int.from_bytes(raw, "big") << 4
    chars = []
    for _ in range(20):
        chars.append(ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(chars))


def raw_id(now: float | None = None) -> bytes:
    global _counter
    with _lock:
        if _pid != os.getpid():  # a forked worker must not repeat its parent's sequence
            _reset_for_process()
        _counter = (_counter + 1) % (1 << 24)
        counter = _counter
        process_bytes = _process_bytes
    seconds = int(time.time() if now is None else now)
    return seconds.to_bytes(4, "big") + process_bytes + counter.to_bytes(3, "big")


def new_id(prefix: str, now: float | None = None) -> str:
    return f"{prefix}-{_encode(raw_id(now))}"


def is_valid(value: str, prefix: str) -> bool:
    head, sep, tail = value.partition("-")
    return sep == "-" and head == prefix and bool(_TAIL.match(tail))


def id_time(value: str) -> int:
    """The Unix time (seconds) an id was made at."""
    tail = value.rpartition("-")[2]
    number = 0
    for char in tail:
        number = number * 32 + ALPHABET.index(char)
    return number >> 68
