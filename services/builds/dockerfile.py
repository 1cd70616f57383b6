"""The images a Dockerfile names: ``FROM``, ``COPY --from`` and ``RUN --mount=…from=``.

The builder only ever sees its workspace's own image store, so this list is not what keeps a
build from reading another workspace's images (``builder``'s isolation does that, whatever the
Dockerfile says). It says which images to put in that store before the build starts: the
allowed base images, the workspace's own builds and registry images, each pulled or copied by
the rules of ``services.image_refs``. A name it misses (one made of a build argument, say) is
simply not there, and the build fails saying so.
"""

import re
import shlex

SCRATCH = "scratch"
_ARG = re.compile(r"\$(?:\{(\w+)(?::?[-+][^}]*)?\}|(\w+))")
_CONTINUATION = re.compile(r"\\[ \t]*\r?\n")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = _CONTINUATION.sub(" ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def _substitute(value: str, args: dict[str, str]) -> str:
    return _ARG.sub(lambda m: args.get(m[1] or m[2], ""), value)


def _flags(words: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    flags: list[tuple[str, str]] = []
    rest = list(words)
    while rest and rest[0].startswith("--"):
        name, _, value = rest.pop(0)[2:].partition("=")
        flags.append((name, value))
    return flags, rest


def image_refs(text: str) -> list[str]:
    """The images ``text`` (a Dockerfile) builds on or copies from, in order, without stage
    names, stage numbers and ``scratch``."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    stage_count = 0  # FROMs so far: COPY --from=N names stage N only if it exists
    refs: list[str] = []

    def add(ref: str, *, stage_index_allowed: bool = True) -> None:
        ref = _substitute(ref, args)
        # COPY --from=0 names an earlier stage; a number with no such stage is an image name
        # (an all-digit image id prefix), which must be classified, not skipped.
        index = stage_index_allowed and ref.isdigit() and int(ref) < stage_count
        named = ref and ref.lower() != SCRATCH and ref not in stages and not index
        if named and ref not in refs:
            refs.append(ref)

    for word, rest in instructions(text):
        try:
            words = shlex.split(rest, posix=True)
        except ValueError:
            words = rest.split()
        if word == "ARG":
            for arg in words:
                name, sep, default = arg.partition("=")
                args.setdefault(name, default if sep else "")
        elif word == "FROM":
            _, positional = _flags(words)
            if positional:
                add(positional[0], stage_index_allowed=False)
            stage_count += 1
            if len(positional) >= 3 and positional[1].upper() == "AS":
                stages.add(positional[2])
        elif word in ("COPY", "ADD"):
            flags, _ = _flags(words)
            for name, value in flags:
                if name == "from" and value:
                    add(value)
        elif word == "RUN":
            flags, _ = _flags(words)
            for name, value in flags:
                if name == "mount":
                    for option in value.split(","):
                        key, _, val = option.partition("=")
                        if key == "from" and val:
                            add(val)
    return refs
