"""The TensorFlow-touching tests again, with TensorFlow's oneDNN kernels on.

The suite runs with oneDNN off (tests/conftest.py), the path of CPUs without AVX-512, where TensorFlow's Eigen
kernels accept less. The other path is the default on AVX-512 CPUs; TensorFlow reads the setting once, when it
loads, so the second run is a subprocess.
"""
import os
import subprocess
import sys

import pytest

pytest.importorskip('tensorflow')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The test files whose code runs TensorFlow ops (tf.data pipeline, decimation, TFDS build and read).
TF_TEST_FILES = ('tests/tfds_data_test.py', 'tests/data_builder_test.py')


@pytest.mark.slow
def test_tensorflow_tests_pass_with_onednn_on():
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS='1')
  result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *TF_TEST_FILES],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
  assert ' passed' in result.stdout, result.stdout[-2000:]
