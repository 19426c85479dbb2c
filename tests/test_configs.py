"""Every shipped config parses through mmseg's `mmseg::` inheritance and builds its model."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
# Runnable configs; configs/_base_ holds fragments that only other configs inherit.
CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts)

#: config -> (K, split points, loss weights of the first local module)
EXPECTED = {
    'configs/deeplabv3_r50_infopro_cityscapes.py': (2, ['layer3.3'], (1.5, 1.0)),
    'configs/deeplabv3_r101_infopro_cityscapes.py': (2, ['layer3.12'], (1.5, 1.0)),
    'configs/deeplabv3_r101_infopro-k3_cityscapes.py': (3, ['layer3.5', 'layer3.18'], (0.5, 1.0)),
    'configs/deeplabv3_r101_infopro-k4_cityscapes.py':
    (4, ['layer3.1', 'layer3.11', 'layer3.21'], (0.5, 1.0)),
    'configs/deeplabv3_r101_infopro-k4-cp_cityscapes.py':
    (4, ['layer3.1', 'layer3.11', 'layer3.21'], (0.5, 1.0)),
    'configs/deeplabv3_r101_infopro-k4-cp_cityscapes-1024x2048.py':
    (4, ['layer3.1', 'layer3.11', 'layer3.21'], (0.5, 1.0)),
    'configs/deeplabv3_r101_infopro_4xb3_cityscapes.py': (2, ['layer3.12'], (1.0, 0.1)),
    'configs/deeplabv3_r101_infopro_cityscapes-640x1280.py': (2, ['layer3.12'], (2.0, 1.0)),
    'configs/deeplabv3_r101_greedy_cityscapes.py': (2, ['layer3.12'], (0.0, 1.0)),
    'configs/demo/deeplabv3_r18_infopro_synthetic.py': (2, ['layer3.0'], (1.5, 1.0)),
    'configs/study/deeplabv3_r18_k4_synthetic.py':
    (4, ['layer1.1', 'layer2.1', 'layer3.1'], (3.0, 0.5)),
    'configs/study/deeplabv3_r18_k8_synthetic.py':
    (8, ['layer1.0', 'layer1.1', 'layer2.0', 'layer2.1', 'layer3.0', 'layer3.1', 'layer4.0'],
     (3.0, 0.5)),
    'configs/study/deeplabv3_r18_k4_supcon_synthetic.py':
    (4, ['layer1.1', 'layer2.1', 'layer3.1'], (3.0, 0.5)),
    'configs/study/deeplabv3_r18_k4_auglocal_synthetic.py':
    (4, ['layer1.1', 'layer2.1', 'layer3.1'], (3.0, 0.5)),
    # mmseg's other DeepLabs: cuts from plan_splits.py, lambdas as for Cityscapes.
    'configs/deeplabv3plus_r101_infopro_cityscapes.py': (2, ['layer3.16'], (1.5, 1.0)),
    'configs/deeplabv3plus_r101_infopro-k4_cityscapes.py':
    (4, ['layer3.0', 'layer3.14', 'layer4.1'], (0.5, 1.0)),
    'configs/deeplabv3_mobilenetv2_infopro_cityscapes.py': (2, ['layer5.1'], (1.5, 1.0)),
    'configs/deeplabv3plus_mobilenetv2_infopro_cityscapes.py': (2, ['layer6.0'], (1.5, 1.0)),
    'configs/deeplabv3plus_s101_infopro_cityscapes.py': (2, ['layer3.14'], (1.5, 1.0)),
    'configs/deeplabv3_r101_infopro_ade20k.py': (2, ['layer3.12'], (1.5, 1.0)),
    'configs/deeplabv3plus_r101_infopro_ade20k.py': (2, ['layer3.18'], (1.5, 1.0)),
    'configs/deeplabv3_r101_infopro_voc12aug.py': (2, ['layer3.11'], (1.5, 1.0)),
    'configs/deeplabv3plus_r101_infopro_voc12aug.py': (2, ['layer3.16'], (1.5, 1.0)),
    # Hierarchical transformers: cuts from plan_splits.py (tests/test_transformer_configs.py).
    'configs/segformer_mit-b5_infopro-k4_cityscapes-1024x1024.py':
    (4, ['layers.1.1.3', 'layers.2.1.11', 'layers.2.1.27'], (0.5, 1.0)),
    'configs/segformer_mit-b5_infopro-k2_cityscapes-1024x1024.py':
    (2, ['layers.2.1.11'], (1.5, 1.0)),
    'configs/upernet_swin-b_infopro-k4_ade20k-512x512.py':
    (4, ['stages.1.blocks.1', 'stages.2.blocks.10', 'stages.3.blocks.0'], (0.5, 1.0)),
    'configs/upernet_swin-t_infopro-k2_ade20k-512x512.py': (2, ['stages.2.blocks.4'], (1.5, 1.0)),
    'configs/segnext_mscan-b_infopro-k4_ade20k-512x512.py':
    (4, ['block1.0', 'patch_embed2', 'block3.3'], (0.5, 1.0)),
    'configs/study/segformer_mit-b0_k2_synthetic.py': (2, ['layers.1.1.0'], (1.5, 1.0)),
}


def test_every_config_is_listed():
    assert sorted(EXPECTED) == CONFIGS


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_the_expected_infopro_model(path):
    cfg = Config.fromfile(str(REPO / path))
    cfg.model.pretrained = None  # no download
    with torch.device('meta'):  # structure only: full-size models allocate nothing
        model = MODELS.build(cfg.model)
    num_modules, split_points, first_weights = EXPECTED[path]
    assert model.backbone.num_modules == num_modules
    assert model.backbone.split_points == split_points
    assert tuple(model.loss_weights[0]) == first_weights
    assert cfg.model_wrapper_cfg.type == 'InfoProDistributedDataParallel'
    if 'greedy' in path:
        assert 'reconstruction' not in model.local_heads[0]
    if '640x1280' in path:
        assert cfg.train_dataloader.dataset.pipeline[3].crop_size == (640, 1280)
        assert cfg.model.data_preprocessor.size == (640, 1280)
    if 'supcon' in path or 'auglocal' in path:
        kind = 'SupConHead' if 'supcon' in path else 'AugLocalClassifierHead'
        assert all(type(heads['classifier']).__name__ == kind for heads in model.local_heads)
    if '4xb3' in path:
        assert cfg.train_dataloader.batch_size == 3 and cfg.optim_wrapper.optimizer.lr == 0.015
