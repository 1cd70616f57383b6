#!/usr/bin/env bash
# Prints a Python >= 3.12 (Django 6 needs it): $PYTHON, then python3.13/3.12 on PATH, then pyenv's.
set -u
for candidate in ${PYTHON:-} python3.12 python3.13 python3 \
    "$HOME"/.pyenv/versions/3.12*/bin/python3 "$HOME"/.pyenv/versions/3.13*/bin/python3 \
    /root/.pyenv/versions/3.12*/bin/python3 /root/.pyenv/versions/3.13*/bin/python3; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if "$path" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        echo "$path"
        exit 0
    fi
done
echo "Oneoff needs Python 3.12 or newer (Django 6); none was found. Install one (e.g. pyenv install 3.12) or set PYTHON=/path/to/python3.12." >&2
exit 1
