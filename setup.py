"""infopro-seg: InfoPro locally supervised learning for mmsegmentation 1.x."""
import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = re.search(r"__version__ = '([^']+)'",
                    (here / 'infopro_seg' / 'version.py').read_text()).group(1)

setup(
    name='infopro-seg',
    version=version,
    description='InfoPro locally supervised learning for semantic segmentation (mmsegmentation 1.x)',
    long_description=(here / 'README.md').read_text() if (here / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['infopro_seg', 'infopro_seg.*']),
    python_requires='>=3.9',
    # The pinned, tested stack is requirements/runtime.txt (installed by tools/setup_env.sh);
    # here only what must be there, so `pip install -e .` fits an existing OpenMMLab set-up.
    install_requires=['mmsegmentation>=1.2,<1.3', 'mmengine>=0.10,<0.11', 'mmcv>=2.0.0rc4,<2.2.0',
                      'cityscapesscripts', 'ftfy', 'regex'],
    license='Apache-2.0',
)
