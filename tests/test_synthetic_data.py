"""Synthetic Cityscapes generator and the polygon-to-labelTrainIds conversion (CPU, seconds)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infopro_seg.datasets import generate_synthetic_cityscapes, render_synthetic_scene
from infopro_seg.datasets.cityscapes_conversion import (CityscapesLayoutError, convert_cityscapes,
                                                        label_path_for)
from infopro_seg.datasets.synthetic import SPLIT_CITIES

REPO = Path(__file__).resolve().parents[1]
NUM_TRAIN, NUM_VAL, HEIGHT, WIDTH = 4, 2, 64, 128
SKY, ROAD, VEGETATION, IGNORE = 10, 0, 8, 255
STEM = re.compile(r'^(?P<city>[a-z]+)_(?P<seq>\d{6})_(?P<frame>\d{6})$')


def _generate(root: Path, seed: int = 0, **kwargs) -> dict:
    return generate_synthetic_cityscapes(root, num_train=NUM_TRAIN, num_val=NUM_VAL,
                                         height=HEIGHT, width=WIDTH, seed=seed, **kwargs)


def _run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    """Runs a script from tools/ the way a user does (from the repo root)."""
    return subprocess.run([sys.executable, str(REPO / 'tools' / name), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def _snapshot(root: Path) -> dict:
    """Maps every file under ``root`` to its modification time."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob('*')}


def _labels(root: Path) -> list:
    return sorted((root / 'gtFine').rglob('*_gtFine_labelTrainIds.png'))


@pytest.fixture(scope='module')
def converted(tmp_path_factory) -> Path:
    """A tiny generated and converted data set, shared read-only by the tests."""
    root = tmp_path_factory.mktemp('synthetic') / 'cityscapes'
    _generate(root)
    summary = convert_cityscapes(root, nproc=2, progress=False)
    assert summary['converted'] == NUM_TRAIN + NUM_VAL and summary['failed'] == 0
    return root


@pytest.fixture
def converted_copy(converted, tmp_path) -> Path:
    """A private copy of the converted set for tests that break or change files."""
    root = tmp_path / 'cityscapes'
    shutil.copytree(converted, root)  # copy2 keeps mtimes, so labels stay up to date
    return root


def test_layout_matches_cityscapes(converted):
    for split, count in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        images = sorted((converted / 'leftImg8bit' / split).glob('*/*_leftImg8bit.png'))
        assert len(images) == count
        assert {p.parent.name for p in images} == set(SPLIT_CITIES[split])
        for image_path in images:
            stem = image_path.name[:-len('_leftImg8bit.png')]
            match = STEM.match(stem)
            assert match and match['city'] == image_path.parent.name, image_path.name
            json_path = (converted / 'gtFine' / split / match['city'] /
                         f'{stem}_gtFine_polygons.json')
            with Image.open(image_path) as image:
                assert (image.format, image.mode, image.size) == ('PNG', 'RGB', (WIDTH, HEIGHT))
            annotation = json.loads(json_path.read_text())
            assert (annotation['imgHeight'], annotation['imgWidth']) == (HEIGHT, WIDTH)
            assert annotation['objects'] and all(
                set(obj) == {'label', 'polygon'} for obj in annotation['objects'])
            assert annotation['objects'][0]['label'] == 'sky'  # background first, drawn over


def test_generation_is_deterministic(tmp_path):
    _generate(tmp_path / 'a', seed=3)
    _generate(tmp_path / 'b', seed=3)
    _generate(tmp_path / 'c', seed=4)
    files = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*.*'))
    assert len(files) == 2 * (NUM_TRAIN + NUM_VAL) + 1  # images, polygons, manifest
    for rel in files:
        assert (tmp_path / 'a' / rel).read_bytes() == (tmp_path / 'b' / rel).read_bytes(), rel
        if rel.suffix == '.png':
            assert (tmp_path / 'a' / rel).read_bytes() != (tmp_path / 'c' / rel).read_bytes(), rel


#: The versions that wrote the stored digests (requirements/runtime.txt). Other versions of numpy
#: or OpenCV may legitimately change pixels (random streams, resampling), so the digest tests run
#: only with these; the property tests below hold with any version. A change of the scenes must
#: bump GENERATOR_VERSION (it is in the manifest, so it changes SET_DIGEST too) and then update
#: the digests.
DIGEST_VERSIONS = dict(numpy='2.3.5', cv2='4.14.0')
SET_SETTINGS = dict(num_train=3, num_val=2, height=64, width=128, seed=0)
SET_DIGEST = '833841d58e46fa7f13e231902822b0cea44417e03e743be74f185cd1755c6c33'
SCENE_SEEDS, SCENE_SIZE = (0, 1, 2, 3), (256, 512)
SCENE_DIGEST = 'c7e454e3f0ee57a154c31d5edff9ae401511f2a48bdee79bd72217b719a560a4'


def _installed_versions() -> dict:
    import cv2
    return dict(numpy=np.__version__, cv2=cv2.__version__)


pinned_versions = pytest.mark.skipif(
    _installed_versions() != DIGEST_VERSIONS,
    reason=f'digests stored for {DIGEST_VERSIONS}, installed {_installed_versions()}')


def _tree_digest(root: Path) -> str:
    """sha256 over every file under ``root``: relative path, size and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob('*') if p.is_file()):
        data = path.read_bytes()
        digest.update(path.relative_to(root).as_posix().encode('utf-8') + b'\0')
        digest.update(len(data).to_bytes(8, 'little') + data)
    return digest.hexdigest()


@pinned_versions
def test_written_set_matches_stored_digest(tmp_path):
    summary = generate_synthetic_cityscapes(tmp_path / 'set', **SET_SETTINGS)
    assert summary['written'] == SET_SETTINGS['num_train'] + SET_SETTINGS['num_val']
    assert _tree_digest(tmp_path / 'set') == SET_DIGEST


@pinned_versions
def test_rendered_scenes_match_stored_digest():
    """Larger scenes than the written set, so windows, paving joints and fence bars show."""
    digest = hashlib.sha256()
    for seed in SCENE_SEEDS:
        image, annotation = render_synthetic_scene(seed, *SCENE_SIZE)
        assert image.shape == (*SCENE_SIZE, 3) and image.dtype == np.uint8
        digest.update(image.tobytes())
        digest.update(json.dumps(annotation, separators=(',', ':')).encode('utf-8'))
    assert digest.hexdigest() == SCENE_DIGEST


def test_rendered_scenes_depend_on_the_seed_alone():
    """Any numpy and OpenCV: a seed gives the same scene every time, other seeds other scenes;
    every polygon is a known Cityscapes label inside the image."""
    from cityscapesscripts.helpers.labels import name2label
    height, width = 96, 192
    scenes = {seed: render_synthetic_scene(seed, height, width) for seed in (0, 1)}
    again, again_annotation = render_synthetic_scene(0, height, width)
    assert np.array_equal(again, scenes[0][0]) and again_annotation == scenes[0][1]
    assert not np.array_equal(scenes[0][0], scenes[1][0])
    for image, annotation in scenes.values():
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert (annotation['imgHeight'], annotation['imgWidth']) == (height, width)
        for obj in annotation['objects']:
            assert obj['label'] in name2label, obj['label']
            points = np.asarray(obj['polygon'])
            assert points.min() >= 0 and points[:, 0].max() < width and \
                points[:, 1].max() < height


def test_generation_is_idempotent(tmp_path):
    root = tmp_path / 'set'
    first = _generate(root)
    before = _snapshot(root)
    again = _generate(root)
    assert (first['written'], again['written'], again['skipped']) == (6, 0, 6)
    assert _snapshot(root) == before
    # A deleted image is regenerated alone, identical to before.
    image = Path(first['images'][1])
    data = image.read_bytes()
    image.unlink()
    assert _generate(root)['written'] == 1 and image.read_bytes() == data
    # Other settings into the same folder are refused unless overwrite is given.
    with pytest.raises(ValueError, match='overwrite'):
        _generate(root, seed=1)
    redone = generate_synthetic_cityscapes(root, num_train=2, num_val=1, height=HEIGHT,
                                           width=WIDTH, seed=1, overwrite=True)
    assert redone['written'] == 3
    assert len(list((root / 'leftImg8bit').rglob('*.png'))) == 3  # stale samples removed


def test_conversion_writes_train_ids(converted):
    labels = _labels(converted)
    assert len(labels) == NUM_TRAIN + NUM_VAL
    seen = set()
    for label_path in labels:
        image_path = Path(str(label_path).replace('gtFine', 'leftImg8bit', 1).replace(
            '_gtFine_labelTrainIds.png', '_leftImg8bit.png'))
        with Image.open(label_path) as label, Image.open(image_path) as image:
            assert label.mode == 'L' and label.size == image.size == (WIDTH, HEIGHT)
            values = set(np.unique(np.asarray(label)).tolist())
        assert values <= set(range(19)) | {IGNORE}, values
        assert len(values - {IGNORE}) >= 4, f'{label_path.name}: only {values}'
        seen |= values
    assert {SKY, ROAD, 2, 13} <= seen  # sky, road, building, car
    assert len(seen - {IGNORE}) >= 8


def test_label_agrees_with_image(converted):
    colours = {SKY: [], ROAD: [], VEGETATION: []}
    for label_path in _labels(converted):
        image_path = Path(str(label_path).replace('gtFine', 'leftImg8bit', 1).replace(
            '_gtFine_labelTrainIds.png', '_leftImg8bit.png'))
        label = np.asarray(Image.open(label_path))
        image = np.asarray(Image.open(image_path)).astype(np.float64)
        # The sky is at the top centre and the road (or the ignored bonnet) at the bottom.
        assert label[0, WIDTH // 2] == SKY
        assert label[-HEIGHT // 5, WIDTH // 2] in (ROAD, IGNORE)
        for train_id, pixels in colours.items():
            pixels.append(image[label == train_id])
    sky, road, vegetation = (np.concatenate(colours[k]).mean(0) for k in (SKY, ROAD, VEGETATION))
    assert sky[2] > sky[0] and sky.mean() > road.mean() + 40  # bright and bluish over grey
    assert np.ptp(road) < 25  # grey
    assert vegetation[1] > vegetation[0] and vegetation[1] > vegetation[2]  # green


def test_wrong_layout_is_refused(converted, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    no_gt = tmp_path / 'no_gt'
    shutil.copytree(converted / 'leftImg8bit', no_gt / 'leftImg8bit')
    no_img = tmp_path / 'no_img'
    (no_img / 'gtFine' / 'train').mkdir(parents=True)
    (no_img / 'leftImg8bit.zip').write_bytes(b'not unzipped')
    no_json = tmp_path / 'no_json'
    (no_json / 'gtFine' / 'train' / 'aachen').mkdir(parents=True)
    (no_json / 'leftImg8bit' / 'train').mkdir(parents=True)
    layout = 'Expected layout'
    cases = [(tmp_path / 'missing', ['does not exist', 'leftImg8bit/<split>/<city>/']),
             (empty, ["'leftImg8bit/' and 'gtFine/' missing", layout]),
             (no_gt, ["'gtFine/' missing", layout]),
             (no_img, ["'leftImg8bit/' missing", layout]),
             (no_json, ["no '*_gtFine_polygons.json' files found", layout])]
    for index, (root, messages) in enumerate(cases):
        before = _snapshot(tmp_path)
        with pytest.raises(CityscapesLayoutError) as error:
            convert_cityscapes(root, nproc=1, progress=False)
        for message in messages:
            assert message in str(error.value)
        if index == 0:  # the command line prints the same message (one run: it imports torch)
            result = _run_tool('dataset_converters/cityscapes.py', root)
            assert result.returncode == 2, (root, result.stdout, result.stderr)
            assert result.stderr.startswith('error: ') and str(root) in result.stderr
            for message in messages:
                assert message in result.stderr, result.stderr
        assert _snapshot(tmp_path) == before, f'{root}: files were written'


def test_interrupted_conversion_resumes(converted_copy):
    labels = _labels(converted_copy)
    lost = labels[2]
    lost.unlink()
    # what a killed worker leaves behind, named as atomic_path names it (host-pid-token);
    # untouched for two days, so stale whichever host wrote it
    stale = lost.with_name(f'.{lost.name}.otherhost-1-0123abcd.tmp.png')
    stale.write_bytes(b'\x89PNG half written')
    os.utime(stale, (0, 0))
    truncated = labels[4]
    truncated.write_bytes(truncated.read_bytes()[:40])  # newer than its JSON but unreadable
    json_path = Path(str(labels[0]).replace('_labelTrainIds.png', '_polygons.json'))
    os.utime(json_path)  # the annotation changed after the label was written

    summary = convert_cityscapes(converted_copy, nproc=2, progress=False)
    assert (summary['converted'], summary['skipped'], summary['failed']) == (3, 3, 0)
    assert summary['removed_temp'] == 1 and not stale.exists() and lost.exists()
    assert label_path_for(json_path) == labels[0]
    with Image.open(truncated) as image:
        image.verify()

    result = _run_tool('dataset_converters/cityscapes.py', converted_copy, '--nproc', '1')
    assert result.returncode == 0, result.stderr
    assert 'converted 0, skipped 6, failed 0' in result.stdout
    forced = convert_cityscapes(converted_copy, nproc=1, force=True, progress=False)
    assert forced['converted'] == 6


def test_corrupt_json_is_reported(converted_copy):
    for label in _labels(converted_copy):
        label.unlink()
    polygons = sorted((converted_copy / 'gtFine').rglob('*_gtFine_polygons.json'))
    broken, unknown = polygons[1], polygons[3]
    broken.write_text('{"imgHeight": 64, "imgWidth": 128, "objects": [')
    data = json.loads(unknown.read_text())
    data['objects'].append({'label': 'spaceship', 'polygon': [[0, 0], [5, 0], [5, 5]]})
    unknown.write_text(json.dumps(data))

    result = _run_tool('dataset_converters/cityscapes.py', converted_copy, '--nproc', '2')
    assert result.returncode == 1
    assert 'converted 4, skipped 0, failed 2' in result.stdout
    assert f'{broken}: invalid JSON' in result.stderr
    assert f"{unknown}: object" in result.stderr and "'spaceship'" in result.stderr
    assert len(_labels(converted_copy)) == 4
    assert not list((converted_copy / 'gtFine').rglob('.*.tmp.png'))


def test_generator_tool(tmp_path):
    result = _run_tool('generate_synthetic_cityscapes.py', tmp_path / 'set', '--num-train', '2',
                       '--num-val', '1', '--height', '32', '--width', '64', '--seed', '5')
    assert result.returncode == 0, result.stderr
    assert 'wrote 3, skipped 0 samples' in result.stdout
    assert len(list((tmp_path / 'set' / 'gtFine').rglob('*_gtFine_polygons.json'))) == 3
    refused = _run_tool('generate_synthetic_cityscapes.py', tmp_path / 'set', '--seed', '6')
    assert refused.returncode == 2 and '--overwrite' in refused.stderr


def test_full_resolution_scene():
    image, annotation = render_synthetic_scene(1, height=1024, width=2048)
    assert image.shape == (1024, 2048, 3) and image.dtype == np.uint8
    points = np.concatenate([np.asarray(o['polygon']) for o in annotation['objects']])
    assert points.min() >= 0 and points[:, 0].max() <= 2047 and points[:, 1].max() <= 1023


def test_mmseg_reads_converted_set(converted):
    pytest.importorskip('mmseg')
    from mmseg.datasets import CityscapesDataset
    for split, count in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        dataset = CityscapesDataset(
            data_root=str(converted),
            data_prefix=dict(img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'),
            pipeline=[])
        assert len(dataset) == count
        info = dataset.get_data_info(0)
        assert Path(info['seg_map_path']).is_file() and Path(info['img_path']).is_file()


def test_conversion_writes_the_official_evaluation_ground_truth(converted):
    """CityscapesMetric (cityscapesscripts) reads *_labelIds.png and *_instanceIds.png."""
    from cityscapesscripts.helpers.labels import id2label
    for train_ids_path in _labels(converted):
        stem = str(train_ids_path)[:-len('_labelTrainIds.png')]
        with Image.open(train_ids_path) as image:
            train_ids = np.array(image)
        with Image.open(stem + '_labelIds.png') as image:
            label_ids = np.array(image)
        with Image.open(stem + '_instanceIds.png') as image:
            assert image.size == (WIDTH, HEIGHT)
        mapped = np.vectorize(lambda i: id2label[int(i)].trainId)(label_ids)
        mapped[mapped < 0] = IGNORE  # ids without a train id
        assert np.array_equal(mapped, train_ids)
