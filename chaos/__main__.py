"""``python -m chaos``: Oneoff on parts of its own, each trial run N times, one table.

    python -m chaos                  # full mode: every trial 10 times (the README's table)
    python -m chaos --quick          # CI: every trial once, small jobs, short outages
    python -m chaos --trial redis-restart --runs 3
    python -m chaos --list

Exit status 1 when any row is not all zero (a wrong run, a lost or doubled job or line, an API
5xx, a crash), 2 when the parts could not be set up or the harness itself failed, 130 on
Ctrl-C; the table is printed first.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from chaos import table
from chaos.check import Outcome
from chaos.parts import Oneoff, PartError, Parts, interrupts_as_exit
from chaos.run import FULL, QUICK, Run, Sizes, Target
from chaos.trials import TRIALS, Trial, logstream

STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {text}", flush=True)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="each trial once, small sizes (CI)")
    parser.add_argument("--runs", type=int, help="runs per trial (full: 10, quick: 1)")
    parser.add_argument(
        "--trial", action="append", default=[], help="only these trials (repeat, or commas)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the parts' folder and logs")
    parser.add_argument("--list", action="store_true", help="list the trials and exit")
    return parser.parse_args(argv)


def selected(names: list[str]) -> list[Trial]:
    wanted = [n.strip() for item in names for n in item.split(",") if n.strip()]
    known = {t.name for t in TRIALS}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown trial(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [t for t in TRIALS if not wanted or t.name in wanted]


def heal(parts: Parts, target: Target) -> None:
    """Before each run: every part up again, whatever the last run left behind."""
    if not parts.postgres.running:
        parts.postgres.start()
    if not parts.redis.proc.alive:
        parts.redis.start()
    if not parts.engine.proc.alive:
        parts.engine.start()
    target.stack.ensure_running()


def one_run(trial: Trial, target: Target, parts: Parts, sizes: Sizes, number: int) -> Outcome:
    heal(parts, target)
    run = Run(target, parts, sizes, number)
    failure = ""
    try:
        trial.run(run)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        failure = f"the trial itself failed: {type(exc).__name__}: {exc}"
        traceback.print_exc()
    heal(parts, target)  # a trial that failed midway may have left a part down
    outcome = run.settle()
    if failure:
        outcome.wrong += 1
        outcome.notes.insert(0, failure)
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    trials = selected(args.trial)
    if args.list:
        width = max(len(t.name) for t in trials)
        print("\n".join(f"{t.name.ljust(width)}  {t.about}" for t in trials))
        return 0
    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = Sizes(**{**vars(sizes), "runs": args.runs})
    say(f"chaos suite, {'quick' if sizes.quick else 'full'} mode: {len(trials)} trials x "
        f"{sizes.runs} runs")  # fmt: skip
    parts = Parts(keep=args.keep)
    rows: list[table.Row] = []
    status = 0
    try:
        with interrupts_as_exit():
            parts.start_services(say)
            parts.ca_file, parts.server_pem = logstream.make_pki(parts.root / "pki")
            env = {"LOG_STREAM_CA_FILE": parts.ca_file, "LOG_STREAM_RETRY_MAX": "2"}
            targets: dict[str, Target] = {}
            for trial in trials:
                if trial.target not in targets:
                    stack: Oneoff = (
                        parts.production(env) if trial.target == "production"
                        else parts.embedded(env)
                    )  # fmt: skip
                    say(f"Oneoff ({trial.target}) on {stack.base_url}: migrate, start, build")
                    targets[trial.target] = Target.prepare(stack)
                    say(f"Oneoff ({trial.target}) ready")
                target = targets[trial.target]
                row = table.Row(trial.name)
                rows.append(row)
                for number in range(1, sizes.runs + 1):
                    outcome = one_run(trial, target, parts, sizes, number)
                    row.add(number, outcome)
                    say(
                        f"{trial.name} run {number}: "
                        + ("correct" if outcome.correct else "WRONG")
                        + f" ({outcome.jobs} jobs)"
                        + "".join(f"\n      {note}" for note in outcome.notes[:6])
                        + "".join(f"\n      ({info})" for info in outcome.info[:4])
                    )
                if trial.after is not None:
                    trial.after(target)
    except KeyboardInterrupt:
        say("interrupted: stopping every part")
        status = 130
    except PartError as exc:
        say(f"a part failed: {exc}")
        status = 2
    except Exception:  # the harness itself broke: still stop every part and print what ran
        traceback.print_exc()
        say("the chaos harness failed")
        status = 2
    finally:
        parts.teardown()
        say("parts stopped" + (f"; kept {parts.root}" if args.keep else " and removed"))
    print()
    print(table.render(rows))
    notes = table.render_notes(rows)
    if notes:
        print("\nWhat went wrong:\n" + notes)
    if status:
        return status
    return 0 if rows and all(row.clean for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
