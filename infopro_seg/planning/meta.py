"""Training steps on PyTorch's ``meta`` device: shapes and dtypes only, nothing allocated.

A meta tensor knows its shape but not its values, so operations whose output shape depends on
the data cannot run. In a segmentor's training step there is one: mmseg's ``accuracy`` metric
(logged beside every decode-head loss) selects the labels that are not ignored with a boolean
mask. :func:`meta_masks_select_all` switches on PyTorch's own answer for the meta device, where
``nonzero`` (and so boolean indexing) assumes that every element is selected: the metric then
runs unchanged, and what it saves for backward (the indices of its ``topk`` on the logits) is
saved as on a real device. No third-party function is replaced.
"""
from contextlib import contextmanager
from typing import Iterator

from mmseg.models.losses import CrossEntropyLoss
from torch import nn
from torch.fx.experimental import _config as fx_config


@contextmanager
def meta_masks_select_all() -> Iterator[None]:
    """Inside the block, boolean masks on meta tensors select every element (real tensors are
    unaffected).

    This is PyTorch's own ``meta_nonzero_assume_all_nonzero`` setting, restored when the block
    exits. The sizes it gives are upper bounds: in our segmentors' training steps only the logged
    accuracy depends on them, not what is saved for backward (the meta estimate equals the CPU
    measurement to the byte, see tests/test_benchmark_planner.py). A loss that selects pixels
    by a mask while keeping the selection for backward would be overestimated.
    """
    with fx_config.patch(meta_nonzero_assume_all_nonzero=True):
        yield


def count_all_pixels_on_meta(module: nn.Module) -> nn.Module:
    """Let ``avg_non_ignore`` cross-entropy losses inside ``module`` run on the meta device.

    mmseg's ``CrossEntropyLoss(avg_non_ignore=True)`` (psi's loss in the paper configs, as in
    the authors' code) divides by the number of valid pixels, which it reads with ``.item()``: a
    value that a meta tensor does not have. The divisor is a scalar and changes nothing that is
    saved for backward, so on meta the losses average over all pixels instead. Real devices are
    never changed: call this only for a module built on ``meta``.

    Args:
        module: A model or head built on the meta device.

    Returns:
        nn.Module: ``module``, its cross-entropy losses averaging over all pixels.
    """
    for child in module.modules():
        if isinstance(child, CrossEntropyLoss) and child.avg_non_ignore:
            child.avg_non_ignore = False
    return module
