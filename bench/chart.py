"""Draw the benchmarks' scaling curves (issue 20, point 5) as one PNG, ``bench/out/scaling.png``.

The benchmarks write each curve to ``bench/out/<name>_scaling.json``:
``{"title", "x_label", "y_label", "x": [...], "series": {"name": [...]}, "log_x": bool}``.
``bench/run.py`` calls this after the benchmarks; it can be run alone to draw the last figures.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
CURVES = ("ingest_scaling", "list_scaling")


def save_curve(name: str, curve: dict) -> Path:
    """Write one curve's JSON for ``draw`` (benchmarks call this)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(curve, indent=1) + "\n")
    return path


def draw(out: Path = OUT) -> Path | None:
    curves = [json.loads(p.read_text()) for n in CURVES if (p := out / f"{n}.json").exists()]
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
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
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
