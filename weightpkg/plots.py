"""Plots of reports, as PNG files with deterministic bytes (matplotlib, an optional extra).

The same report gives the same PNG bytes: a fixed size and dpi, the Agg renderer without the
global pyplot state, no "Software" or date metadata, and a deterministic order and colour for
every mark.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError, write_atomically

if TYPE_CHECKING:
    from .seeds import SeedReport

DPI = 100
#: Matplotlib's tab10 colours, written out so a colour never depends on the installed style.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LIMIT_COLOUR = "#b00020"


def _matplotlib() -> tuple[Any, Any]:
    """Figure and the Agg canvas, imported only when a plot is asked for."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(
            "drawing a plot needs matplotlib, which is not installed: pip install 'weightpkg[plot]'"
        ) from None
    return Figure, FigureCanvasAgg


def seed_plot(report: SeedReport | Mapping[str, Any], out: Path) -> Path:
    """Draw a seed-sensitivity report as a PNG at ``out``: one x position per row (clean, then
    the stress tests), each seed a dot, the min–max range as a bar with a tick at the median,
    and the recipe's accepted limits (the accepted spread as a band from the row's minimum,
    the minimum and maximum as dashed lines) where it declares them."""
    data = report if isinstance(report, Mapping) else report.to_json()
    figure_cls, canvas_cls = _matplotlib()
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    rows = list(data["rows"])
    seeds = list(data["seeds"])
    published = data.get("published_seed")
    variants = {v["seed"]: v for v in data["variants"]}
    width = max(6.4, 1.5 * len(rows) + 3.2)
    with matplotlib.rc_context(
        {
            "font.family": "DejaVu Sans",
            "axes.unicode_minus": True,
            "path.simplify": False,
        }
    ):
        figure = figure_cls(figsize=(width, 4.8), dpi=DPI)
        canvas_cls(figure)
        axes = figure.add_subplot(1, 1, 1)
        count = len(seeds)
        step = 0.5 / max(count - 1, 1)
        offsets = [(-0.25 + k * step) if count > 1 else 0.0 for k in range(count)]
        any_limit = False
        for x, row in enumerate(rows):
            summary = row["summary"]
            failed = row.get("acceptance") is not None and not row["acceptance"]["ok"]
            bar_colour = LIMIT_COLOUR if failed else "#333333"
            limits = (row.get("acceptance") or {}).get("limits", {})
            if "max-spread" in limits:
                any_limit = True
                axes.add_patch(
                    Rectangle(
                        (x - 0.38, summary["min"]),
                        0.76,
                        limits["max-spread"],
                        facecolor="#2ca02c",
                        alpha=0.12,
                        edgecolor="none",
                        zorder=0,
                    )
                )
            for key in ("min", "max"):
                if key in limits:
                    any_limit = True
                    axes.hlines(
                        limits[key], x - 0.4, x + 0.4, colors=LIMIT_COLOUR, linestyles="dashed", linewidth=1.2
                    )
            axes.vlines(x, summary["min"], summary["max"], colors=bar_colour, linewidth=2.0, zorder=2)
            axes.hlines(summary["median"], x - 0.18, x + 0.18, colors=bar_colour, linewidth=2.5, zorder=2)
            for k, seed in enumerate(seeds):
                value = variants[seed]["metrics"][row["name"]]
                axes.plot(
                    [x + offsets[k]],
                    [value],
                    linestyle="none",
                    marker=MARKERS[(k // len(PALETTE)) % len(MARKERS)],
                    markersize=6,
                    markerfacecolor=PALETTE[k % len(PALETTE)],
                    markeredgecolor="black" if seed == published else PALETTE[k % len(PALETTE)],
                    markeredgewidth=1.2 if seed == published else 0.5,
                    zorder=3,
                    label=f"seed {seed}" + (" (published)" if seed == published else "") if x == 0 else None,
                )
            axes.annotate(
                f"spread {summary['spread']:.4g}",
                (x, summary["max"]),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                color=bar_colour,
            )
        axes.set_xticks(range(len(rows)), [r["name"] for r in rows])
        axes.set_xlim(-0.6, len(rows) - 0.4)
        axes.set_ylabel(str(data["metric"]))
        verdict = "accepted" if data.get("ok") else "NOT ACCEPTED"
        if not data.get("limits_declared"):
            verdict = "no limits declared"
        axes.set_title(
            f"{data['recipe']['id']}: {data['metric']} across {count} seeds ({verdict})", fontsize=11
        )
        axes.grid(axis="y", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
        handles, labels = axes.get_legend_handles_labels()
        if any_limit:
            handles += [
                Patch(facecolor="#2ca02c", alpha=0.12, label="accepted spread (from min)"),
                Line2D([], [], color=LIMIT_COLOUR, linestyle="dashed", label="accepted min / max"),
            ]
            labels += ["accepted spread (from min)", "accepted min / max"]
        axes.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    out = Path(out)
    write_atomically(out, buffer.getvalue())
    return out
