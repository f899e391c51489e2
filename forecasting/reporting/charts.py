"""Charts rendered with matplotlib's Agg backend to PNG bytes (no display, no server)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

_BAND, _LINE, _HISTORY, _ACTUAL = "#9ecae1", "#08519c", "#555555", "#d62728"
_PALETTE = ("#08519c", "#e6550d", "#31a354", "#756bb1", "#636363")


def _pyplot():
    # Imported on first use: matplotlib costs about a second to import, and only reports need it.
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def matplotlib_dates():
    import matplotlib.dates

    return matplotlib.dates


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    # Fixed margins, not bbox_inches="tight": that draws every figure twice.
    figure.savefig(buffer, format="png", dpi=80)
    _pyplot().close(figure)
    return buffer.getvalue()


def palette(i: int) -> str:
    """The i-th color of the palette used for several forecasts in one chart."""
    return _PALETTE[i % len(_PALETTE)]


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so the HTML that embeds it needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass(frozen=True)
class Band:
    """One forecast drawn as a p50 line inside a lower-upper band."""

    label: str
    ds: np.ndarray
    lower: np.ndarray
    median: np.ndarray
    upper: np.ndarray
    color: str | None = None


def fan_chart(
    title: str,
    history: pd.DataFrame,
    bands: Sequence[Band],
    actuals: pd.DataFrame | None = None,
    size: tuple[float, float] = (6.0, 2.6),
) -> bytes:
    """History line, then each band (p-lower..p-upper shaded, p50 line); actuals as dots."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=size)
    axes.plot(history["ds"], history["y"], color=_HISTORY, linewidth=1.0, label="history")
    several = len({b.color for b in bands}) > 1 or (len(bands) > 1 and bands[0].color is None)
    for i, band in enumerate(bands):
        color = band.color or (_PALETTE[i % len(_PALETTE)] if several else _LINE)
        fill = color if several else _BAND
        axes.fill_between(band.ds, band.lower, band.upper, color=fill, alpha=0.2 if several else 0.6, linewidth=0)
        axes.plot(band.ds, band.median, color=color, linewidth=1.4, label=band.label)
    if actuals is not None and not actuals.empty:
        axes.scatter(actuals["ds"], actuals["y"], color=_ACTUAL, s=8, zorder=5, label="actual")
    axes.set_title(title, fontsize=9, loc="left")
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", frameon=False, ncol=4)
    locator = matplotlib_dates().AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(matplotlib_dates().ConciseDateFormatter(locator))
    figure.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.12)
    return _png(figure)


def histogram(
    values: np.ndarray, title: str, xlabel: str, reference: float | None = None, bins: int = 40,
    clip: tuple[float, float] | None = None,
) -> bytes:
    """Histogram of finite values (clipped to ``clip`` so one outlier cannot flatten the rest)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.0, 2.6))
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite)]
    if clip is not None:
        finite = np.clip(finite, *clip)
    axes.hist(finite, bins=bins, color=_LINE, alpha=0.8)
    if reference is not None:
        axes.axvline(reference, color=_ACTUAL, linestyle="--", linewidth=1)
    axes.set_title(title, fontsize=9, loc="left")
    axes.set_xlabel(xlabel, fontsize=8)
    axes.set_ylabel("series", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    figure.subplots_adjust(left=0.12, right=0.97, top=0.88, bottom=0.18)
    return _png(figure)


def bar_chart(values: Mapping[str, float], title: str, xlabel: str, reference: float | None = None) -> bytes:
    """Horizontal bars, one per key, in the given order (top to bottom)."""
    plt = _pyplot()
    labels = list(values)
    height = 0.3 * len(labels) + 0.9
    figure, axes = plt.subplots(figsize=(5.0, height))
    axes.barh(labels[::-1], [values[k] for k in labels[::-1]], color=_LINE, alpha=0.8)
    if reference is not None:
        axes.axvline(reference, color=_ACTUAL, linestyle="--", linewidth=1)
    axes.set_title(title, fontsize=9, loc="left")
    axes.set_xlabel(xlabel, fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3, axis="x")
    figure.subplots_adjust(left=0.3, right=0.97, top=1 - 0.3 / height, bottom=0.45 / height)
    return _png(figure)


def line_chart(values: Mapping[int, float], title: str, xlabel: str, ylabel: str, reference: float | None = None) -> bytes:
    """One line over integer x (e.g. coverage by horizon), with an optional reference level."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.0, 2.6))
    xs = sorted(values)
    axes.plot(xs, [values[x] for x in xs], marker="o", markersize=3, color=_LINE)
    if reference is not None:
        axes.axhline(reference, color=_ACTUAL, linestyle="--", linewidth=1, label=f"nominal {reference:.0%}")
        axes.legend(fontsize=7, frameon=False)
    axes.set_ylim(0, 1.02)
    axes.set_title(title, fontsize=9, loc="left")
    axes.set_xlabel(xlabel, fontsize=8)
    axes.set_ylabel(ylabel, fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    figure.subplots_adjust(left=0.12, right=0.97, top=0.88, bottom=0.18)
    return _png(figure)


def text_image(lines: Sequence[str]) -> bytes:
    """Lines of text as a PNG (what explain writes when there is nothing to draw)."""
    plt = _pyplot()
    figure = plt.figure(figsize=(9.0, 0.35 * len(lines) + 0.4))
    for i, line in enumerate(lines):
        figure.text(0.01, 1 - (i + 0.8) / (len(lines) + 0.4), line, fontsize=9, va="center")
    return _png(figure)
