"""srcvq_jax.cli: the tcmalloc relaunch of the commands (a fresh interpreter per case: it re-executes itself)."""
import os
import subprocess
import sys

import pytest

from srcvq_jax import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Prints what the relaunched process sees: its allocator and how many times it started.
_PROBE = ('import os, sys; from srcvq_jax import cli; print("start", flush=True); cli.relaunch_with_tcmalloc(); '
          'print(cli.allocator(), os.environ.get("LD_PRELOAD", ""))')


def _run_probe(**env):
  environ = {k: v for k, v in os.environ.items() if k not in ('LD_PRELOAD', cli.TCMALLOC_SWITCH)}
  environ.update(env)
  result = subprocess.run([sys.executable, '-c', _PROBE], cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=120, check=True)
  return result.stdout.split('\n')


@pytest.mark.skipif(cli.find_tcmalloc() is None, reason='tcmalloc not installed (make sysdeps installs it)')
def test_relaunch_preloads_tcmalloc_once():
  lines = _run_probe()
  assert lines.count('start') == 2  # the original process and the relaunched one, no loop
  allocator, preload = lines[2].split(' ', 1)
  assert allocator == 'tcmalloc' and 'tcmalloc' in preload


def test_switch_and_existing_preload_keep_the_process():
  assert _run_probe(**{cli.TCMALLOC_SWITCH: '0'})[:2] == ['start', 'system ']
  # An allocator the user already preloads is kept (a library path that does not exist is only a loader warning).
  lines = _run_probe(LD_PRELOAD='libjemalloc-not-installed.so')
  assert lines.count('start') == 1 and lines[1] == 'jemalloc libjemalloc-not-installed.so'
