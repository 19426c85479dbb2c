"""A Cityscapes-format data root ready for mmseg's ``CityscapesDataset``: real data if it is
there, else a generated synthetic set, with the polygon labels converted to train ids."""
import os.path as osp
from typing import NamedTuple, Optional, Tuple

from ..errors import ConfigError
from .cityscapes_conversion import convert_cityscapes
from .synthetic import generate_synthetic_cityscapes


class PreparedData(NamedTuple):
    """What :func:`prepare_cityscapes_data` found and did.

    Attributes:
        data_root: The data root (absolute).
        generated: Samples of a synthetic set written now (0 when the folder held data).
        conversion: :func:`convert_cityscapes`'s summary (``converted``, ``skipped``, ...).
    """
    data_root: str
    generated: int
    conversion: dict


def default_data_root(data_dir: str) -> str:
    """``data_dir/cityscapes`` when it holds real Cityscapes (``leftImg8bit/`` and ``gtFine/``),
    else ``data_dir/synthetic_cityscapes``."""
    real = osp.join(data_dir, 'cityscapes')
    has_real = all(osp.isdir(osp.join(real, folder)) for folder in ('leftImg8bit', 'gtFine'))
    return real if has_real else osp.join(data_dir, 'synthetic_cityscapes')


def prepare_cityscapes_data(data_root: Optional[str] = None,
                            num_train: int = 40,
                            num_val: int = 10,
                            image_size: Tuple[int, int] = (256, 512),
                            data_dir: str = 'data') -> PreparedData:
    """Make a Cityscapes-format data root ready for training and evaluation.

    A folder without ``leftImg8bit/`` gets a generated synthetic set (seed 0); then every polygon
    annotation is converted to ``*_labelTrainIds.png`` (labels already converted are skipped, so
    calling this again is cheap).

    Args:
        data_root: The data root; ``None`` picks :func:`default_data_root` of ``data_dir``.
        num_train: Training samples of a generated set.
        num_val: Validation samples of a generated set.
        image_size: ``(height, width)`` of generated images.
        data_dir: Where the default data roots live.

    Returns:
        PreparedData: The absolute data root, the samples generated now and the conversion's
        summary.

    Raises:
        ConfigError: Label files failed to convert (the first three are named).
    """
    if data_root is None:
        data_root = default_data_root(data_dir)
    data_root = osp.abspath(data_root)
    generated = 0
    if not osp.isdir(osp.join(data_root, 'leftImg8bit')):
        summary = generate_synthetic_cityscapes(data_root, num_train=num_train, num_val=num_val,
                                                height=image_size[0], width=image_size[1])
        generated = summary['written']
    # A set generated here is small: convert it in this process. The caller may hold threads
    # (torch's, a training run's) that a forked worker pool would inherit mid-lock.
    conversion = convert_cityscapes(data_root, nproc=1 if generated else None, progress=False)
    if conversion['failed']:
        raise ConfigError(f"{conversion['failed']} label files of {data_root} failed to "
                          f"convert: {conversion['failures'][:3]}")
    return PreparedData(data_root, generated, conversion)
