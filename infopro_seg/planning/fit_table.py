"""The "which config for my GPU" table: what the fit chooses for common GPU sizes."""
from typing import Dict, List, Sequence, Tuple

from ..utils.memory import GiB
from .budget import candidates_for, cheapest_fitting
from .config import config_optimizer
from .fit import default_headroom_gib
from .profile import profile_model

#: GPU memory sizes of the table, GB as the cards are sold (GiB of device memory).
GPU_SIZES = (8, 12, 16, 24, 40, 80)


def fit_rows(name: str, cfg, crops: Sequence[Tuple[int, int]], batch: int,
             gpu_sizes: Sequence[float] = GPU_SIZES, max_k: int = 8) -> List[Dict]:
    """One row per (crop, GPU size): what ``--fit <size>`` chooses for ``cfg``.

    Each crop is measured once per precision (meta device); every GPU size is then planned from
    those measurements with the default headroom.

    Args:
        name: The model's name in the table.
        cfg: The loaded config.
        crops: ``(H, W)`` of the training crops.
        batch: Images per GPU.
        gpu_sizes: GPU memory sizes in GiB.
        max_k: Largest K.

    Returns:
        list[dict]: ``model, crop, gpu_gib, choice, k, recompute, amp, step_each_module,
        peak_gib, headroom_gib, overhead`` (``choice`` is ``'does not fit'`` when nothing fits).
    """
    rows = []
    for crop in crops:
        profiles = [profile_model(cfg.model, crop, batch, 'meta', config_optimizer(cfg), amp=amp)
                    for amp in (False, True)]
        for size in gpu_sizes:
            headroom = default_headroom_gib(size)
            chosen = cheapest_fitting(candidates_for(profiles, int((size - headroom) * GiB),
                                                     max_k, 'allow', 'allow'))
            row = dict(model=name, crop=f'{crop[0]}x{crop[1]}', gpu_gib=size,
                       headroom_gib=headroom)
            if chosen is None:
                row.update(choice='does not fit', k='-', recompute='-', amp='-',
                           step_each_module='-', peak_gib=None, overhead=None)
            else:
                row.update(choice=chosen.name(), k=chosen.num_modules,
                           recompute=chosen.checkpointing_text(), amp=chosen.amp,
                           step_each_module=chosen.step_each_module,
                           peak_gib=chosen.peak_bytes / GiB, overhead=chosen.overhead)
            rows.append(row)
    return rows


def format_fit_table(rows: Sequence[Dict], batch: int) -> str:
    """The rows as a Markdown table."""
    lines = [f'| model | crop (batch {batch}) | GPU | K | recompute | AMP | step each module | '
             'planned peak | headroom | est. overhead |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        if row['peak_gib'] is None:
            lines.append(f"| {row['model']} | {row['crop']} | {row['gpu_gib']:g} GB | does not "
                         f"fit | | | | | {row['headroom_gib']:.1f} GiB | |")
            continue
        lines.append(
            f"| {row['model']} | {row['crop']} | {row['gpu_gib']:g} GB | {row['k']} | "
            f"{row['recompute']} | {'on' if row['amp'] else 'off'} | "
            f"{'yes' if row['step_each_module'] else 'no'} | {row['peak_gib']:.2f} GiB | "
            f"{row['headroom_gib']:.1f} GiB | {row['overhead']:+.0%} |")
    return '\n'.join(lines)
