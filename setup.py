"""srcvq_jax: source-aware discrete representations of music (VQ-VAE, JAX/Flax NNX)."""
import setuptools

# Pinned: the versions the project is tested with (JAX/Flax APIs move fast).
CORE = [
    'jax==0.10.2',
    'jaxlib==0.10.2',
    'flax==0.12.8',
    'optax==0.2.8',
    'orbax-checkpoint==0.12.8',
    # etils.epath: workdir files (config.json, metrics.jsonl) on local disks and gs:// alike (orbax needs it too).
    'etils[epath]==1.15.0',
    'ml-collections==1.1.0',
    'absl-py==2.5.1',
    'numpy==2.4.6',
    'scipy==1.17.1',
    'tensorboardX==2.6.5',
    'soundfile==0.14.0',
    'tqdm==4.70.1',
]
DATA = [
    'tensorflow-cpu==2.21.0',
    'tensorflow-datasets==4.9.10',
    'musdb==0.4.3',
    'stempeg==0.2.6',
    'music21==10.5.1',
    'pyfluidsynth==1.4.0',
    # tensorflow-datasets 4.9.10 imports it on Python 3.11 without declaring it (tensorflow/datasets#11212).
    'importlib_resources==6.5.2',
]
EVAL = [
    'museval==0.4.1',
    'scikit-learn==1.9.1',
    'matplotlib==3.11.2',
    'librosa==0.11.0',
]
# The interactive page (python -m srcvq_jax.app); tests drive it in Debian's headless Chromium through Selenium.
APP = ['fastapi==0.165.0', 'uvicorn==0.54.0', 'python-multipart==0.0.34']
# The notebook test executes notebooks/colab_tpu.ipynb in CI.
NOTEBOOK = ['nbclient==0.11.0', 'nbformat==5.11.1', 'ipykernel==7.4.0']
DEV = ['pytest==9.2.0', 'selenium==4.51.0'] + NOTEBOOK

setuptools.setup(
    name='srcvq_jax',
    version='0.1.0',
    description='Source-aware discrete representations of music: a VQ-VAE in JAX/Flax NNX',
    packages=setuptools.find_packages(include=['srcvq_jax', 'srcvq_jax.*', 'data_prep', 'data_prep.*',
                                               'configs', 'configs.*']),
    package_data={'srcvq_jax': ['app_static/*']},
    python_requires='>=3.10',
    install_requires=CORE,
    extras_require={
        'data': DATA,
        'eval': EVAL,
        'app': APP,
        'dev': DATA + EVAL + APP + DEV,
    },
)
