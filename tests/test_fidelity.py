"""Where the paper configs follow the authors' code: psi's loss averaging, align_corners."""
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from conftest import REPO


def build_paper_model():
    """The paper's R-101 model on the meta device: its structure, no memory."""
    cfg = Config.fromfile(f'{REPO}/configs/deeplabv3_r101_infopro_cityscapes.py')
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def materialised(module):
    """``module`` (built on meta) on the CPU, SyncBN as BN, with freshly initialised weights."""
    module = revert_sync_batchnorm(module.to_empty(device='cpu'))
    torch.manual_seed(0)
    for layer in module.modules():
        if hasattr(layer, 'reset_parameters'):
            layer.reset_parameters()  # BatchNorm also resets its running statistics
    return module


def test_paper_config_local_heads_follow_the_reference():
    model = build_paper_model()
    heads = model.local_heads[0]
    assert heads['reconstruction'].align_corners is True
    assert heads['classifier'].align_corners is True
    assert heads['classifier'].loss_decode.avg_non_ignore is True
    # The decode and auxiliary heads keep mmseg's settings.
    assert model.decode_head.align_corners is False
    assert model.decode_head.loss_decode.avg_non_ignore is False


def test_psi_loss_is_cross_entropy_averaged_over_valid_pixels():
    psi = materialised(build_paper_model().local_heads[0]['classifier']).eval()
    torch.manual_seed(0)
    feature = torch.randn(2, psi.in_channels, 8, 8)
    labels = torch.randint(0, psi.num_classes, (2, 64, 64))
    labels[:, :20] = 255  # about a third of the pixels are ignored
    samples = []
    for label in labels:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    loss = psi.loss([feature], samples, dict())['loss_ce']

    logits = F.interpolate(psi([feature]), size=(64, 64), mode='bilinear', align_corners=True)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=255, reduction='none')
    valid = labels != 255
    torch.testing.assert_close(loss, per_pixel.sum() / valid.sum(), rtol=1e-5, atol=0)
    # Averaging over all pixels (mmseg's default) would give a clearly smaller loss.
    assert loss > 1.4 * per_pixel.sum() / labels.numel()
