"""On the embedded SQLite, storing a chatty job's log does not hold the API up: the log writer's
transactions are small and it yields the database's one write lock after each (jobs/logs/store.py).
Runs bench/bench_sqlite_ingest.py in quick mode (its own SQLite file, database cache and rate
limits, as ``make run`` has them): 50 GETs while another process stores log lines flat out."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_api_p95_stays_low_while_a_chatty_job_logs_on_sqlite(tmp_path):
    out = tmp_path / "results.json"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "bench/bench_sqlite_ingest.py", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    chatty = json.loads(out.read_text())["chatty"]
    # Loose bounds for a busy shared machine (the target, 200 ms, is the benchmark's): before,
    # requests waited up to seconds for the write lock (p95 0.4-0.9 s, max 2.6-4.4 s measured).
    assert chatty["p95"] < 1000, result.stdout
    assert chatty["max"] < 1500, result.stdout
