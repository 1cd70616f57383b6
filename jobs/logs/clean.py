"""Log text made safe to store: UTF-8 kept whole, NUL removed, and the truncation marker."""

from collections.abc import Iterator


def split_bytes(payload: bytes, limit: int) -> Iterator[bytes]:
    """Pieces of at most ``limit`` bytes, never cutting a UTF-8 character in two."""
    start = 0
    size = len(payload)
    while size - start > limit:
        end = start + limit
        back = 0
        # Step back over continuation bytes (0b10xxxxxx) so a character stays whole.
        while back < 3 and (payload[end - back] & 0xC0) == 0x80:
            back += 1
        if back < 3:
            end -= back
        yield payload[start:end]
        start = end
    yield payload[start:]


def clean_text(piece: bytes) -> str:
    """Text safe to store: invalid UTF-8 replaced, NUL removed (PostgreSQL refuses it)."""
    text = piece.decode("utf-8", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text


def format_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"  # pragma: no cover


def truncation_text(cap: int, dropped: int) -> str:
    return (
        f"[oneoff] log truncated: this job's output passed the {format_bytes(cap)} log cap "
        f"(JOB_LOG_MAX_BYTES); {format_bytes(dropped)} ({dropped} bytes) after this line "
        "were not stored"
    )
