"""Run every benchmark in bench/ (files named bench_*.py), each printing medians and a ratio
against a baseline measured in the same run. `--quick` uses tiny sizes so CI keeps them working."""

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("only", nargs="*", help="names of benchmarks to run, e.g. api_list")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    if not scripts:
        print("no benchmarks yet")
        return 0
    failed: dict[str, collections.deque[str]] = {}
    for script in scripts:
        print(f"\n=== {script.stem} {'(quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        returncode, tail = run_echoing(cmd)
        print(f"--- {script.stem}: exit {returncode} in {time.monotonic() - started:.1f}s")
        if returncode:
            failed[script.stem] = tail
    from chart import draw

    drawn = draw()
    if drawn:
        print(f"\nscaling curves drawn in {drawn.relative_to(HERE.parent)}")
    if failed:
        # Printed again at the very end: a CI log is often read from its last lines only.
        for name, tail in failed.items():
            print(f"\n--- the last {len(tail)} lines {name} printed:")
            print("".join(tail), end="")
        print(f"benchmarks failed: {', '.join(failed)}")
        return 1
    return 0


def run_echoing(cmd: list[str], keep: int = 40) -> tuple[int, collections.deque[str]]:
    """Run ``cmd``, echoing its output (stderr merged) as it comes; its exit code and last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=keep)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines in the order they were printed
    with subprocess.Popen(
        cmd, cwd=HERE.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line)
    return proc.returncode, tail


if __name__ == "__main__":
    sys.exit(main())
