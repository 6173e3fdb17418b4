"""Test setup: 8 fake CPU devices (like one TPU host), set before anything imports jax."""
import os
import sys

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512-class features; elsewhere its Eigen
# kernels run, and they accept less (e.g. a depthwise conv with unequal strides). The suite runs the portable
# path unless the caller chose (TF reads this once, when it loads); tests/onednn_test.py reruns the TF-touching
# tests with oneDNN on, so neither path can break unseen.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# `from configs import ci` resolves from the repo root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402


@pytest.fixture
def ci_config():
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  config.data.source = 'synthetic'
  return config


@pytest.fixture
def fast_compile():
  """XLA's cheap pipeline (as flax's own tests use): ~2x faster CPU compiles, for tests of equality, not speed."""
  import jax  # pylint: disable=g-import-not-at-top
  previous = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', previous)


# scripts/reliability_table.py sets this to a file; each fault test then appends what it inflicted and what it
# observed (docs/reliability.md is rendered from those lines, not written by hand).
FAULT_REPORT = 'SRCVQ_FAULT_REPORT'


@pytest.fixture
def fault_report(request):
  """record(fault, inflicted, observed, lost): one row of docs/reliability.md, from the test's own observations
  (a no-op unless SRCVQ_FAULT_REPORT names a file). Call it after the test's assertions: a failing test writes
  no row."""
  import json  # pylint: disable=g-import-not-at-top

  def record(fault: str, inflicted: str, observed: str, lost: str = 'none'):
    path = os.environ.get(FAULT_REPORT)
    if path:
      with open(path, 'a', encoding='utf-8') as f:
        f.write(json.dumps({'test': request.node.nodeid, 'fault': fault, 'inflicted': inflicted,
                            'observed': observed, 'lost': lost}) + '\n')
  return record
