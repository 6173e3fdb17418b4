"""notebooks/colab_tpu.ipynb runs top to bottom on CPU with CI = True (no TPU, network or Drive).

The parameters are injected as papermill does, without papermill: the cell tagged 'parameters' gets the overrides
appended (CI = True, temporary folders), then nbclient executes the notebook in a fresh ipykernel whose working
directory is the repository.
"""
import os
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, 'notebooks', 'colab_tpu.ipynb')

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')


def _inject_parameters(notebook, **params) -> None:
  cells = [c for c in notebook.cells if 'parameters' in c.metadata.get('tags', [])]
  assert len(cells) == 1, 'the notebook needs exactly one cell tagged "parameters"'
  overrides = ''.join(f'{name} = {value!r}\n' for name, value in params.items())
  cells[0].source += '\n# Injected by tests/notebook_test.py\n' + overrides


def _outputs_text(notebook) -> str:
  parts = []
  for cell in notebook.cells:
    for output in cell.get('outputs', []):
      parts.append(output.get('text', ''))
      parts.extend(str(v) for v in output.get('data', {}).values())
  return '\n'.join(parts)


def test_notebook_is_valid_and_parameterized():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  tagged = [c for c in notebook.cells if 'parameters' in c.metadata.get('tags', [])]
  assert len(tagged) == 1 and 'CI = False' in tagged[0].source
  # Saved without outputs: the repository holds the notebook, not a run of it.
  assert all(not c.get('outputs') for c in notebook.cells if c.cell_type == 'code')


@pytest.mark.slow
def test_notebook_runs_in_ci_mode(tmp_path, monkeypatch):
  # The kernel and the commands it starts inherit this environment: XLA's cheap pipeline (~2x faster CPU
  # compiles) for the smoke run.
  monkeypatch.setenv('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  run_root = tmp_path / 'run_root'
  _inject_parameters(notebook, CI=True, LOCAL_ROOT=str(tmp_path / 'local'), RUN_ROOT=str(run_root))
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                                   resources={'metadata': {'path': REPO}})
  started = time.time()
  client.execute()
  print(f'notebook ran in {time.time() - started:.0f} s')

  text = _outputs_text(notebook)
  assert 'devices' in text and ' x ' in text  # the devices cell printed the device list
  assert os.path.isdir(run_root / 'run' / 'checkpoints' / '2')  # trained 2 steps of configs/ci.py
  assert 'exported step 2' in text
  assert sorted(os.listdir(run_root / 'export')) == ['config.json', 'params']
  assert os.path.exists(run_root / 'run' / 'eval' / 'test' / 'results.json')
  stems = [name for _, _, files in os.walk(run_root / 'separated') for name in files if name.endswith('.wav')]
  assert len(stems) == 4, stems  # one wav per source
  assert text.count('<audio') == 5  # the input mixture and each stem, playable inline
