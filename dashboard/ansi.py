"""Log lines as HTML: ANSI SGR colours and styles rendered, other control characters and bidi
controls shown as visible escapes, everything else escaped.

One line at a time, with the colour state reset at each line (a page of lines can start
anywhere in a log). The output holds only:

- escaped text (``html.escape``, quotes included);
- ``<span class="...">`` whose classes come from fixed names (``a-f1``, ``a-bo``...) and whose
  ``style`` is built from integers only (``color:rgb(1,2,3)``), never from the line's text;
- ``<span class="ctl">`` around a visible escape (``\\x07``, ``<U+202E>``), itself escaped;
- ``<mark>`` around the matches of a search, found in the visible text.

A line without ESC, control or bidi characters takes the fast path: one ``html.escape``.
"""

import re
from functools import lru_cache
from html import escape

from jobs.logs import search

# SGR: ESC [ params m. Any other escape sequence (cursor moves, erase, OSC titles) is shown.
_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
# What cannot be shown as itself: C0 controls but tab, DEL, C1 controls, and the bidi controls
# (embeddings, overrides, isolates and marks) that can make text read differently from what it is.
_SPECIAL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def visible(char: str) -> str:
    """The visible escape of one special character (not yet HTML-escaped)."""
    if char in _BIDI:
        return f"<U+{ord(char):04X}>"
    return f"\\x{ord(char):02x}"


def _escape_text(text: str) -> str:
    """HTML-escape ``text`` with its special characters as visible escapes in ``span.ctl``."""
    if not _SPECIAL.search(text):
        return escape(text)
    out: list[str] = []
    last = 0
    for match in _SPECIAL.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(f'<span class="ctl">{escape(visible(match.group()))}</span>')
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def _palette(n: int) -> tuple[int, int, int]:
    """xterm's 256 colours, 16 and up (the first 16 are CSS classes)."""
    if n < 232:
        n -= 16
        levels = (0, 95, 135, 175, 215, 255)
        return levels[n // 36], levels[n // 6 % 6], levels[n % 6]
    gray = 8 + 10 * (n - 232)
    return gray, gray, gray


class _Style:
    """The SGR state: colours as a class number (0-15) or an (r, g, b) of ints, and flags."""

    __slots__ = ("bg", "bold", "dim", "fg", "italic", "underline")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.fg: int | tuple[int, int, int] | None = None
        self.bg: int | tuple[int, int, int] | None = None
        self.bold = self.dim = self.italic = self.underline = False

    def open_tag(self) -> str:
        """The ``<span>`` for this state, or "" for the default."""
        classes: list[str] = []
        styles: list[str] = []
        for prefix, prop, colour in (("f", "color", self.fg), ("b", "background-color", self.bg)):
            if isinstance(colour, int):
                classes.append(f"a-{prefix}{colour}")
            elif colour is not None:
                r, g, b = (int(v) for v in colour)
                styles.append(f"{prop}:rgb({r},{g},{b})")
        if self.bold:
            classes.append("a-bo")
        if self.dim:
            classes.append("a-di")
        if self.italic:
            classes.append("a-it")
        if self.underline:
            classes.append("a-un")
        if not classes and not styles:
            return ""
        tag = "<span"
        if classes:
            tag += f' class="{" ".join(classes)}"'
        if styles:
            tag += f' style="{";".join(styles)}"'
        return tag + ">"

    def apply(self, params: str) -> None:
        """Apply one SGR's parameters (``1;31``, ``38;5;208``, ``38:2::255:0:0``, ``""``)."""
        codes = params.split(";") if params else ["0"]
        i = 0
        while i < len(codes):
            code = codes[i]
            i += 1
            if ":" in code:  # ITU T.416 sub-parameters: 38:5:n, 38:2:r:g:b or 38:2::r:g:b
                parts = code.split(":")
                if parts[0] in ("38", "48") and len(parts) > 2:
                    colour = self._extended(parts[1], [p for p in parts[2:] if p != ""][-3:])
                    self._set(parts[0], colour)
                elif parts[0] == "4":
                    self.underline = parts[1:2] != ["0"]
                continue
            n = int(code) if code.isdigit() and len(code) < 4 else -1
            if n in (38, 48):
                kind = codes[i] if i < len(codes) else ""
                count = 1 if kind == "5" else 3 if kind == "2" else 0
                args = codes[i + 1 : i + 1 + count]
                i += 1 + count
                self._set(str(n), self._extended(kind, args))
            elif n == 0:
                self.reset()
            elif n == 1:
                self.bold = True
            elif n == 2:
                self.dim = True
            elif n == 3:
                self.italic = True
            elif n == 4:
                self.underline = True
            elif n == 22:
                self.bold = self.dim = False
            elif n == 23:
                self.italic = False
            elif n == 24:
                self.underline = False
            elif 30 <= n <= 37:
                self.fg = n - 30
            elif n == 39:
                self.fg = None
            elif 40 <= n <= 47:
                self.bg = n - 40
            elif n == 49:
                self.bg = None
            elif 90 <= n <= 97:
                self.fg = n - 90 + 8
            elif 100 <= n <= 107:
                self.bg = n - 100 + 8

    def _set(self, which: str, colour: int | tuple[int, int, int] | None) -> None:
        if colour is None:
            return
        if which == "38":
            self.fg = colour
        else:
            self.bg = colour

    @staticmethod
    def _extended(kind: str, args: list[str]) -> int | tuple[int, int, int] | None:
        if not all(a.isdigit() and len(a) < 4 for a in args):
            return None
        numbers = [int(a) for a in args]
        if kind == "5" and len(numbers) == 1 and numbers[0] < 256:
            n = numbers[0]
            return n if n < 16 else _palette(n)
        if kind == "2" and len(numbers) == 3 and all(v < 256 for v in numbers):
            return numbers[0], numbers[1], numbers[2]
        return None


State = tuple  # a _Style's fields, in __slots__ order: hashable, for the caches below

_DEFAULT: State = (None, False, False, None, False, False)


def _style_of(state: State) -> _Style:
    style = _Style()
    for name, value in zip(_Style.__slots__, state, strict=True):
        setattr(style, name, value)
    return style


def _apply(state: State, params: str) -> State:
    style = _style_of(state)
    style.apply(params)
    return tuple(getattr(style, name) for name in _Style.__slots__)


_cached_apply = lru_cache(maxsize=4096)(_apply)


def _next_state(state: State, params: str) -> State:
    """The state after one SGR (logs repeat the same few short ones: those are cached)."""
    return _cached_apply(state, params) if len(params) <= 40 else _apply(state, params)


@lru_cache(maxsize=4096)
def _tag(state: State) -> str:
    return _style_of(state).open_tag()


def segments(text: str) -> list[tuple[str, str]]:
    """The line as (opening span tag or "", raw text) pieces, the SGR sequences consumed."""
    state = _DEFAULT
    out: list[tuple[str, str]] = []
    last = 0
    for match in _SGR.finditer(text):
        if match.start() > last:
            out.append((_tag(state), text[last : match.start()]))
        state = _next_state(state, match.group(1))
        last = match.end()
    if last < len(text):
        out.append((_tag(state), text[last:]))
    return out


def plain(text: str) -> str:
    """The line without its SGR sequences (what the reader sees, as text)."""
    return _SGR.sub("", text) if "\x1b" in text else text


# What a page's lines joined by newlines may hold for ``escape_page``: ``_SPECIAL`` but the newline.
_SPECIAL_BUT_NEWLINE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def escape_page(texts: list[str]) -> list[str] | None:
    """``render`` of each of ``texts`` without a search, in one ``html.escape`` of them all
    (a page of 1,000 usual lines: a third of the time of one call per line); None when one of
    them needs more (ESC, a control or bidi character, a newline of its own), for a line by line
    ``render``."""
    if not texts:
        return []
    page = "\n".join(texts)
    if "\x1b" in page or _SPECIAL_BUT_NEWLINE.search(page) or page.count("\n") != len(texts) - 1:
        return None
    return escape(page).split("\n")


def render(text: str, query: str | None = None) -> str:
    """One log line as safe HTML, with the matches of ``query`` (a search of the log, in
    ``GET /v1/logs`` ``text`` syntax: plain, ``*`` wildcards or ``/regex/``) in ``<mark>``."""
    if "\x1b" not in text:
        if not query:
            return _escape_text(text)
        pieces = [("", text)]
    else:
        pieces = segments(text)
    spans: list[tuple[int, int]] = []
    if query:
        seen = "".join(piece for _, piece in pieces)
        spans = [m.span() for m in search.text_pattern(query).finditer(seen) if m.end() > m.start()]
    out: list[str] = []
    position = 0
    for tag, piece in pieces:
        start, end = position, position + len(piece)
        position = end
        if tag:
            out.append(tag)
        cut = start
        for m_start, m_end in spans:
            if m_end <= cut or m_start >= end:
                continue
            if m_start > cut:
                out.append(_escape_text(piece[cut - start : m_start - start]))
            stop = min(m_end, end)
            out.append(
                f"<mark>{_escape_text(piece[max(m_start, cut) - start : stop - start])}</mark>"
            )
            cut = stop
        if cut < end:
            out.append(_escape_text(piece[cut - start :]))
        if tag:
            out.append("</span>")
    return "".join(out)
