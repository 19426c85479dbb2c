"""The benchmark's plot: peak memory against crop size, one line per method."""
import math
from typing import List

from .measure import ESTIMATED


def _pixels(crop: str) -> int:
    height, width = crop.split('x')
    return int(height) * int(width)


def label_log_axis(ax, axis: str = 'y') -> None:
    """Put numbered ticks on a log axis whatever its range.

    Matplotlib labels a log axis at powers of ten only, so a range within one decade (peaks of
    1.5 to 8 GiB) shows no number at all. The ticks are 1-9 x 10^n under a decade, 1, 2 and 5 x
    10^n under three, powers of ten beyond, written as plain numbers (``0.5``, ``2``, ``20``). A
    range with fewer than two such ticks (a narrow one) becomes a linear axis.

    Args:
        ax: The matplotlib Axes, already holding its data.
        axis: ``'x'`` or ``'y'``.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
    low, high = sorted(ax.get_ylim() if axis == 'y' else ax.get_xlim())
    decades = math.log10(high / low) if low > 0 else math.inf
    subs = (tuple(float(i) for i in range(1, 10)) if decades < 1 else
            (1.0, 2.0, 5.0) if decades < 3 else (1.0, ))
    locator = LogLocator(base=10, subs=subs)
    in_view = [v for v in locator.tick_values(low, high) if low <= v <= high]
    target = ax.yaxis if axis == 'y' else ax.xaxis
    if len(in_view) < 2:
        (ax.set_yscale if axis == 'y' else ax.set_xscale)('linear')
        return
    target.set_major_locator(locator)
    target.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
    target.set_minor_locator(NullLocator())


def draw_memory_vs_crop(rows: List[dict], title: str):
    """The figure of :func:`plot_memory_vs_crop` (not written anywhere).

    Args:
        rows: The benchmark's rows (those with a ``peak_mb`` are plotted).
        title: The plot's title.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    several_batches = len({r['batch'] for r in rows}) > 1
    lines = list(dict.fromkeys((r['method'], r['batch']) for r in rows))
    for i, (method, batch) in enumerate(lines):
        points = sorted(((_pixels(r['crop']), r['peak_mb'], r['figure'] == ESTIMATED, r['crop'])
                         for r in rows
                         if (r['method'], r['batch']) == (method, batch) and r.get('peak_mb')),
                        key=lambda p: p[0])
        if not points:
            continue
        color = f'C{i % 10}'
        ax.plot([p[0] for p in points], [p[1] / 1024 for p in points], '-', color=color,
                label=f'{method}, batch {batch}' if several_batches else method)
        for pixels, peak, estimated, _ in points:
            ax.plot(pixels, peak / 1024, 'o', color=color,
                    markerfacecolor='none' if estimated else color)
    crops = sorted({(_pixels(r['crop']), r['crop']) for r in rows})
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xticks([p for p, _ in crops])
    ax.set_xticklabels([c for _, c in crops], rotation=30)
    ax.xaxis.set_minor_locator(NullLocator())
    label_log_axis(ax, 'y')
    ax.set_xlabel('crop (H x W)')
    ax.set_ylabel('peak memory (GiB, log scale)')
    ax.set_title(title + '\n(hollow markers: estimated on the meta device)', fontsize=9)
    ax.grid(True, alpha=0.3)
    if lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_memory_vs_crop(rows: List[dict], path: str, title: str) -> None:
    """Peak memory against crop size, one line per method (hollow markers: meta estimates),
    with numbers on both axes.

    Args:
        rows: The benchmark's rows (those with a ``peak_mb`` are plotted).
        path: The image file to write.
        title: The plot's title.
    """
    draw_memory_vs_crop(rows, title).savefig(path, dpi=120)
