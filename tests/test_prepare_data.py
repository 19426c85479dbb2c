"""prepare_cityscapes_data: the data root the demo and the study train on."""
import json
import os

import pytest

from infopro_seg.datasets.prepare import default_data_root, prepare_cityscapes_data
from infopro_seg.errors import ConfigError


def test_an_empty_folder_gets_a_converted_synthetic_set_once(tmp_path):
    root = tmp_path / 'set'
    first = prepare_cityscapes_data(str(root), num_train=2, num_val=1, image_size=(32, 64))
    assert first.data_root == str(root) and first.generated == 3
    assert first.conversion['converted'] == 3 and first.conversion['failed'] == 0
    assert len(list(root.rglob('*_gtFine_labelTrainIds.png'))) == 3
    again = prepare_cityscapes_data(str(root), num_train=2, num_val=1, image_size=(32, 64))
    assert again.generated == 0 and again.conversion['skipped'] == 3


def test_the_default_root_is_real_cityscapes_when_it_is_there(tmp_path):
    assert default_data_root(str(tmp_path)) == str(tmp_path / 'synthetic_cityscapes')
    (tmp_path / 'cityscapes' / 'leftImg8bit').mkdir(parents=True)
    assert default_data_root(str(tmp_path)) == str(tmp_path / 'synthetic_cityscapes')
    (tmp_path / 'cityscapes' / 'gtFine').mkdir()
    assert default_data_root(str(tmp_path)) == str(tmp_path / 'cityscapes')


def test_labels_that_fail_to_convert_are_a_config_error(tmp_path):
    root = tmp_path / 'set'
    prepare_cityscapes_data(str(root), num_train=2, num_val=1, image_size=(32, 64))
    broken = sorted(root.rglob('*_gtFine_polygons.json'))[0]
    annotation = json.loads(broken.read_text())
    annotation['objects'].append({'label': 'spaceship', 'polygon': [[0, 0], [5, 0], [5, 5]]})
    broken.write_text(json.dumps(annotation))
    later = broken.stat().st_mtime + 10
    os.utime(broken, (later, later))  # newer than its label: converted again
    with pytest.raises(ConfigError, match=r"1 label files of .* failed to convert: .*spaceship"):
        prepare_cityscapes_data(str(root))
