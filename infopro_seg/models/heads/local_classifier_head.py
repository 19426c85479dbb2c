"""The InfoPro pixel classifier psi (Sec. 3.2: the task term of the local loss)."""
from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS


@MODELS.register_module()
class LocalClassifierHead(FCNHead):
    """Predicts the labels from a local module's feature: pixel-wise cross-entropy.

    The reference psi is exactly a one-conv FCN head: 3x3 conv -> ``channels`` + norm + ReLU,
    Dropout2d(0.1), 1x1 conv -> classes, bilinear up-sampling to the label size, cross-entropy
    ignoring label 255. It reads one feature (the module output), so ``in_index`` is -1.

    Args:
        in_channels: Channels of the local module's output (filled in by the segmentor).
        num_classes: Filled in by the segmentor from the decode head.
        channels: Width of the hidden conv (512 in the paper).
        dropout_ratio: Dropout before the classifier.
        **kwargs: Any other ``FCNHead`` / ``BaseDecodeHead`` argument (norm_cfg, loss_decode,
            ignore_index, align_corners, ...).
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: int = 512,
                 dropout_ratio: float = 0.1,
                 **kwargs):
        kwargs.setdefault('num_convs', 1)
        kwargs.setdefault('kernel_size', 3)
        kwargs.setdefault('concat_input', False)
        kwargs.setdefault('in_index', -1)
        super().__init__(in_channels=in_channels, channels=channels, num_classes=num_classes,
                         dropout_ratio=dropout_ratio, **kwargs)
