"""Run every benchmark in bench/ (files named bench_*.py), each printing medians and a ratio
against a baseline measured in the same run. `--quick` uses tiny sizes so CI keeps them working."""

import argparse
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
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} {'(quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        result = subprocess.run(cmd, cwd=HERE.parent, check=False)
        print(f"--- {script.stem}: exit {result.returncode} in {time.monotonic() - started:.1f}s")
        if result.returncode:
            failed.append(script.stem)
    from chart import draw

    drawn = draw()
    if drawn:
        print(f"\nscaling curves drawn in {drawn.relative_to(HERE.parent)}")
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
