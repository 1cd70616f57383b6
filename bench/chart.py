"""Draw the benchmarks' scaling curves (issue 20, point 5) as one PNG, ``bench/out/scaling.png``.

The benchmarks write their figures to ``bench/out/``: ``ingest_scaling.json`` (bench_runner.py,
part f: stored lines/s with 1, 4 and 16 chatty jobs at once) and ``list_scaling.json``
(bench_api_list.py: list p95 at 10,000, 100,000 and 1,000,000 jobs). ``bench/run.py`` calls
this after the benchmarks; it can be run alone to draw the last figures.
"""

import json
import statistics
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def ingest_curve(data: dict) -> dict:
    rows = data["rows"]
    return {
        "title": f"Log ingest, one worker (load average {data['load_average']:.1f})",
        "x_label": "chatty jobs printing at once",
        "y_label": "log lines stored a second, all jobs",
        "x": [row["jobs"] for row in rows],
        "series": {"stored lines/s (median)": [statistics.median(r["lines_per_s"]) for r in rows]},
        "log_x": True,
    }


def list_curve(data: dict) -> dict:
    rows = data["rows"]
    return {
        "title": "GET /v1/services/{id}/jobs, p95 (load average "
        + " / ".join(f"{row.get('load_average', 0):.1f}" for row in rows)
        + ")",
        "x_label": "jobs in the table",
        "y_label": "ms",
        "x": [row["jobs"] for row in rows],
        "series": {
            "first page": [row["first_p95"] for row in rows],
            "half-way down (cursor)": [row["deep_p95"] for row in rows],
            "status=failed": [row["status_p95"] for row in rows],
        },
        "log_x": True,
    }


CURVES = {"ingest_scaling": ingest_curve, "list_scaling": list_curve}


def draw(out: Path = OUT) -> Path | None:
    curves = [
        curve(json.loads(path.read_text()))
        for name, curve in CURVES.items()
        if (path := out / f"{name}.json").exists()
    ]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.2), squeeze=False)
    for ax, curve in zip(axes[0], curves, strict=True):
        for label, values in curve["series"].items():
            ax.plot(curve["x"], values, marker="o", label=label)
        if curve.get("log_x"):
            ax.set_xscale("log")
        ax.set_xticks(curve["x"], [f"{x:,}" for x in curve["x"]])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(
            StrMethodFormatter("{x:,.0f}" if ax.get_ylim()[1] > 50 else "{x:g}")
        )
        ax.set_title(curve["title"])
        ax.set_xlabel(curve["x_label"])
        ax.set_ylabel(curve["y_label"])
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out / "scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    drawn = draw()
    print(f"drew {drawn}" if drawn else "no curves in bench/out/ yet")
    sys.exit(0)
