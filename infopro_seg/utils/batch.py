"""Random labelled batches shaped as mmseg's dataloader gives them (tests, benchmarks, planner)."""
from typing import Optional, Sequence

import torch


def random_seg_batch(batch_size: int, crop_size: Sequence[int], num_classes: int,
                     device: str = 'cpu', seed: Optional[int] = 0) -> dict:
    """uint8 images and ``SegDataSample`` labels, the input of a segmentor's ``train_step``.

    Args:
        batch_size: Images in the batch.
        crop_size: ``(H, W)``.
        num_classes: Labels are drawn from ``[0, num_classes)``.
        device: Where the tensors live (``'meta'`` for shapes only).
        seed: Seed of the CPU generator; ``None`` (or the meta device) draws without one.

    Returns:
        dict: ``inputs`` (list of ``(3, H, W)`` uint8 tensors) and ``data_samples``.
    """
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    height, width = crop_size
    generator = None
    if seed is not None and torch.device(device).type == 'cpu':
        generator = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                                    generator=generator, device=device))
        label = torch.randint(0, num_classes, (1, height, width), generator=generator,
                              device=device)
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(height, width), ori_shape=(height, width),
                                 pad_shape=(height, width)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
