"""The benchmark's plot: peak memory against crop size, one line per method."""
from typing import List

from .measure import ESTIMATED


def _pixels(crop: str) -> int:
    height, width = crop.split('x')
    return int(height) * int(width)


def plot_memory_vs_crop(rows: List[dict], path: str, title: str) -> None:
    """Peak memory against crop size, one line per method (hollow markers: meta estimates).

    Args:
        rows: The benchmark's rows (those with a ``peak_mb`` are plotted).
        path: The image file to write.
        title: The plot's title.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
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
    ax.minorticks_off()
    ax.set_xlabel('crop (H x W)')
    ax.set_ylabel('peak memory (GiB)')
    ax.set_title(title + '\n(hollow markers: estimated on the meta device)', fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
