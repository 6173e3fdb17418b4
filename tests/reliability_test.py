"""Faults inflicted at deterministic points: broken newest checkpoints (train and inference fall back to the step
before and move the broken one aside), resuming with another model's config, Ctrl-C, two trainers on a workdir."""
import errno
import glob
import json
import os
import re
import shutil
import signal
import time

import jax
import numpy as np
import pytest

from srcvq_jax import checkpointing
from srcvq_jax import errors
from srcvq_jax import inference
from srcvq_jax import loop
from srcvq_jax import trainer
from srcvq_jax import workdir_lock


def _config(ci_config, **train):
  ci_config.train.sdr_tracks = 0  # (not under test here; saves the monitor's compile)
  ci_config.train.update(train)
  return ci_config


@pytest.fixture(scope='module')
def trained_workdir(tmp_path_factory):
  """A ci-config workdir with checkpoints at steps 10 and 20."""
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  config.data.source = 'synthetic'
  workdir = tmp_path_factory.mktemp('reliability') / 'run'
  trainer.train_and_evaluate(_config(config), str(workdir))
  return workdir


def _truncate_data_files(step_dir):
  """Halves every array data file of the step (OCDBT keeps them in state/d/ or state/ocdbt.process_N/d/)."""
  files = [f for f in glob.glob(os.path.join(step_dir, 'state', '**', 'd', '*'), recursive=True)
           if os.path.getsize(f) > 1024]
  assert files
  for name in files:
    with open(name, 'r+b') as f:
      f.truncate(os.path.getsize(name) // 2)


def _remove_metadata(step_dir):
  os.remove(os.path.join(step_dir, 'state', '_METADATA'))


def _empty(step_dir):
  shutil.rmtree(step_dir)
  os.makedirs(step_dir)


BREAKS = {'truncated data files': _truncate_data_files, 'missing _METADATA': _remove_metadata,
          'empty step folder': _empty}


@pytest.mark.parametrize('kind', [pytest.param(kind, marks=[] if i == 0 else [pytest.mark.slow])
                                  for i, kind in enumerate(BREAKS)])
def test_broken_newest_checkpoint_inference_and_train_fall_back(trained_workdir, tmp_path, ci_config, kind, caplog,
                                                                 fault_report):
  workdir = tmp_path / 'run'
  shutil.copytree(trained_workdir, workdir)
  BREAKS[kind](str(workdir / 'checkpoints' / '20'))

  # Inference (separate / evaluate / export load this way): the step before, nothing moved.
  separator = inference.load(str(workdir))
  assert separator.step == 10
  assert os.path.isdir(workdir / 'checkpoints' / '20')
  warning = next(r.getMessage() for r in caplog.records if 'step 20' in r.getMessage() and 'does not restore' in
                 r.getMessage())

  # Training: resumes at 10, moves 20 aside (kept, not deleted) and saves a new 20 without colliding.
  state = trainer.train_and_evaluate(_config(ci_config), str(workdir))
  assert int(state['step']) == 20
  assert os.path.isdir(workdir / 'checkpoints' / checkpointing.CORRUPT_DIR / '20')
  steps = [json.loads(line)['step'] for line in open(workdir / 'metrics.jsonl')]
  assert steps[-1] == 20 and 15 in steps[steps.index(20) + 1:]  # trained 11..20 again
  assert inference.load(str(workdir)).step == 20
  how = {'truncated data files': 'every array file of `checkpoints/20/state/**/d/` halved',
         'missing _METADATA': '`checkpoints/20/state/_METADATA` deleted',
         'empty step folder': '`checkpoints/20/` replaced by an empty folder'}[kind]
  fault_report(f'newest checkpoint broken: {kind}', how,
               f'inference (separate/evaluate/export) loads step {separator.step} with one warning ("'
               f'{warning.split(" (")[0]} ..."); training resumes at step 10, moves step 20 to '
               f'`checkpoints/{checkpointing.CORRUPT_DIR}/20`, trains 11..20 again and saves a new step 20',
               'one save interval (10 steps)')


def test_every_checkpoint_broken_is_one_line_for_inference(trained_workdir, tmp_path, fault_report):
  workdir = tmp_path / 'run'
  shutil.copytree(trained_workdir, workdir)
  for step in ('10', '20'):
    _remove_metadata(str(workdir / 'checkpoints' / step))
  with pytest.raises(errors.UserError, match='restores') as error:
    inference.load(str(workdir))
  fault_report('every checkpoint broken', '`_METADATA` of both steps deleted',
               f'inference: one line, "{_short(error.value)}"', '-')


@pytest.mark.parametrize('section, field, value, shown', [
    ('quantizer', 'num_codebooks', 3, r'quantizer\.num_codebooks: 2 -> 3'),
    ('data', 'sources', ('vocals', 'bass', 'drums'), r'data\.sources: \[.vocals., .bass., .drums., .other.\] ->')])
def test_resume_with_another_model_is_refused_and_writes_nothing(trained_workdir, tmp_path, ci_config, section,
                                                                 field, value, shown, fault_report):
  workdir = tmp_path / 'run'
  shutil.copytree(trained_workdir, workdir)
  before = (workdir / 'config.json').read_text()
  config = _config(ci_config, num_steps=30)
  config[section][field] = value
  with pytest.raises(errors.UserError, match=shown) as error:
    trainer.train_and_evaluate(config, str(workdir))
  assert '\n' not in str(error.value) and 'train.num_steps' not in str(error.value)
  assert (workdir / 'config.json').read_text() == before
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['10', '20']  # nothing moved aside
  fault_report(f'resume with another model ({section}.{field})', f'`{section}.{field}` changed on a finished '
               'workdir', f'one line, "{_short(error.value)}"; `config.json` and the checkpoints unchanged')


def test_config_differences():
  old = {'a': {'b': 1, 'c': [1, 2]}, 'd': 'x'}
  new = {'a': {'b': 2, 'c': (1, 2)}, 'e': 3}
  assert loop.config_differences(old, new) == ['a.b: 1 -> 2', 'd: x -> <absent>', 'e: <absent> -> 3']


def test_ctrl_c_requests_a_save_and_a_second_one_interrupts():
  before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
  with loop._Preemption() as preemption:  # pylint: disable=protected-access
    os.kill(os.getpid(), signal.SIGINT)
    assert preemption.requested
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  # The handlers in place before come back (the default ones, or SIG_IGN under nohup).
  assert {signum: signal.getsignal(signum) for signum in before} == before


def _write_lock(workdir, heartbeat_age_s, host='other-host', pid=4242):
  os.makedirs(workdir, exist_ok=True)
  now = time.time()
  with open(os.path.join(workdir, workdir_lock.LOCK_FILE), 'w') as f:
    json.dump({'host': host, 'pid': pid, 'token': 'theirs', 'since': now - 3600,
               'heartbeat': now - heartbeat_age_s}, f)


def test_a_second_trainer_is_refused_naming_the_holder(tmp_path, ci_config, fault_report):
  workdir = str(tmp_path / 'run')
  _write_lock(workdir, heartbeat_age_s=10)
  with pytest.raises(workdir_lock.WorkdirLocked, match='pid 4242 on host other-host') as error:
    trainer.train_and_evaluate(_config(ci_config), workdir)
  assert '\n' not in str(error.value)
  assert not os.path.exists(os.path.join(workdir, 'checkpoints'))  # nothing written
  assert json.load(open(os.path.join(workdir, workdir_lock.LOCK_FILE)))['token'] == 'theirs'
  fault_report('a second trainer on a live workdir', 'a lock whose heartbeat is 10 s old, from another host',
               f'one line, "{_short(error.value)}"; nothing written')


def test_a_live_lock_is_exclusive_heartbeats_and_is_released(tmp_path):
  workdir = str(tmp_path / 'run')
  os.makedirs(workdir)
  with workdir_lock.WorkdirLock(workdir, heartbeat_s=0.05) as lock:
    first = json.load(open(lock.path))['heartbeat']
    with pytest.raises(workdir_lock.WorkdirLocked, match=f'pid {os.getpid()}'):
      workdir_lock.WorkdirLock(workdir).acquire()
    time.sleep(0.3)
    assert json.load(open(lock.path))['heartbeat'] > first
  assert not os.path.exists(lock.path)


def test_a_stale_lock_is_taken_over(tmp_path, caplog, fault_report):
  workdir = str(tmp_path / 'run')
  _write_lock(workdir, heartbeat_age_s=workdir_lock.STALE_AFTER_S + 5)
  with workdir_lock.WorkdirLock(workdir) as lock:
    assert json.load(open(lock.path))['token'] == lock.record['token']
  assert os.path.exists(os.path.join(workdir, workdir_lock.LOCK_FILE + '.stale'))
  warning = next(r.getMessage() for r in caplog.records if 'stale lock' in r.getMessage())
  fault_report('a stale lock (its holder killed, or its host gone)',
               f'a lock whose heartbeat is {workdir_lock.STALE_AFTER_S + 5:.0f} s old',
               f'taken over with one warning ("{_short(warning)}"); the old lock kept as `lock.json.stale`')


@pytest.mark.parametrize('signum, where', [(signal.SIGTERM, 'eval'),
                                           pytest.param(signal.SIGINT, 'save', marks=pytest.mark.slow)])
def test_a_signal_saves_stops_and_says_so(tmp_path, ci_config, monkeypatch, signum, where, fault_report):
  """The signal arrives at a fixed point (step 10's evaluation, or inside step 10's save call): the run finishes
  that save, stops with loop.Stopped (the command exits 128 + signal) and resumes from step 10."""
  workdir = str(tmp_path / 'run')
  if where == 'eval':
    original = trainer._write_eval_audio  # pylint: disable=protected-access

    def hook(writer, step, *args):
      if step == 10:
        os.kill(os.getpid(), signum)
      return original(writer, step, *args)
    monkeypatch.setattr(trainer, '_write_eval_audio', hook)
  else:
    original = checkpointing.save

    def hook(manager, step, *args):
      if step == 10:
        os.kill(os.getpid(), signum)
      return original(manager, step, *args)
    monkeypatch.setattr(checkpointing, 'save', hook)
  with pytest.raises(loop.Stopped, match=f'stopped by {signal.Signals(signum).name} at step 1[01]') as stopped:
    trainer.train_and_evaluate(_config(ci_config), workdir)
  step = stopped.value.step
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [str(step)]
  monkeypatch.undo()
  state = trainer.train_and_evaluate(_config(ci_config), workdir)
  assert int(state['step']) == 20
  name = signal.Signals(signum).name
  fault_report(f'{name}' + (' (preemption)' if signum == signal.SIGTERM else ' (Ctrl-C)') + f' during {where}',
               f'{name} sent inside step 10\'s ' + ('evaluation' if where == 'eval' else 'save call'),
               f'saves step {step} and stops: "{stopped.value}", exit code {128 + signum}; the rerun resumes '
               f'at step {step}', 'none')


def test_sources_written_as_one_string_are_rejected(ci_config, fault_report):
  from srcvq_jax import config_lib  # pylint: disable=g-import-not-at-top
  ci_config.data.sources = ('vocals,bass',)
  with pytest.raises(errors.ConfigError, match='looks like a list written as one string') as error:
    config_lib.validate(ci_config)
  fault_report('a tuple override written as one string', '`--config.data.sources=vocals,bass`',
               f'one line, "{_short(error.value)}"', '-')


def _no_space(*args, **kwargs):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_metrics_stops_with_one_line_and_resumes(tmp_path, ci_config, monkeypatch,
                                                                          fault_report):
  """ENOSPC from the metrics file at step 15 (after step 10's checkpoint): one UserError naming the cause and
  the step to resume from, nothing half-kept; the same command then resumes from step 10 and finishes."""
  from srcvq_jax import metric_writers  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'run')
  original = metric_writers.MetricWriter.write_scalars

  def hook(self, step, scalars):
    if step == 15:
      _no_space()
    return original(self, step, scalars)
  monkeypatch.setattr(metric_writers.MetricWriter, 'write_scalars', hook)
  with pytest.raises(errors.UserError, match='a write failed at step 15 .*No space left on device.* resume from '
                     'step 10') as failed:
    trainer.train_and_evaluate(_config(ci_config), workdir)
  assert '\n' not in str(failed.value)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10']
  assert not os.path.exists(os.path.join(workdir, workdir_lock.LOCK_FILE))  # released: the rerun may start
  monkeypatch.undo()
  assert int(trainer.train_and_evaluate(_config(ci_config), workdir)['step']) == 20
  fault_report('disk full while writing metrics', 'ENOSPC raised by the metrics write of step 15',
               f'stops with one line, "{_short(failed.value)}", lock released; the rerun resumes at step 10',
               '5 steps (less than one save interval)')


def test_a_failed_checkpoint_write_removes_the_partial_save(tmp_path, ci_config, monkeypatch, fault_report):
  """Step 20's save fails the way TensorStore fails on a full disk (a ValueError after the temporary folder was
  started): the partial folder is removed, step 10 is intact, the error is one line."""
  workdir = str(tmp_path / 'run')
  original = checkpointing.save

  def hook(manager, step, *args):
    if step == 20:
      partial = os.path.join(str(manager.directory), '20.orbax-checkpoint-tmp-1234')
      os.makedirs(os.path.join(partial, 'state'))
      raise ValueError('RESOURCE_EXHAUSTED: Error writing "params.decoder" in OCDBT database: Failed writing')
    return original(manager, step, *args)
  monkeypatch.setattr(checkpointing, 'save', hook)
  with pytest.raises(errors.UserError, match=r'at step 20 \(ValueError: RESOURCE_EXHAUSTED.*removed the partial '
                     r'save\(s\) 20.orbax-checkpoint-tmp-1234; checkpoints up to step 10 are intact') as failed:
    trainer.train_and_evaluate(_config(ci_config), workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10']
  fault_report('a checkpoint write fails', 'step 20\'s save starts its temporary folder, then raises '
               'TensorStore\'s RESOURCE_EXHAUSTED', f'one line, "{_short(failed.value)}"; the temporary folder '
               'removed', 'one save interval')


def test_a_read_error_is_not_taken_for_a_full_disk(tmp_path, ci_config, monkeypatch):
  from srcvq_jax import metric_writers  # pylint: disable=g-import-not-at-top

  def hook(self, step, scalars):
    raise OSError(errno.EACCES, 'Permission denied')
  monkeypatch.setattr(metric_writers.MetricWriter, 'write_scalars', hook)
  with pytest.raises(PermissionError):
    trainer.train_and_evaluate(_config(ci_config), str(tmp_path / 'run'))


def test_tensorboard_write_errors_raise_in_the_caller(tmp_path, monkeypatch):
  """A failed event write raises at write_scalars (tensorboardX's SummaryWriter would lose it in its thread and
  then block the loop forever on a full queue)."""
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top

  from srcvq_jax import metric_writers  # pylint: disable=g-import-not-at-top
  writer = metric_writers.MetricWriter(str(tmp_path))
  writer.write_scalars(1, {'train/loss': 1.0})
  monkeypatch.setattr(record_writer.RecordWriter, 'write', _no_space)
  with pytest.raises(OSError, match='No space left'):
    writer.write_scalars(2, {'train/loss': 0.5})
  monkeypatch.undo()
  writer.close()
  assert [step for step, tag in _scalar_events(tmp_path / 'tensorboard')] == [1]


def _scalar_events(folder):
  """(step, tag) of every scalar event in the folder's event files (TFRecord framing: length, its CRC, data,
  its CRC)."""
  import struct  # pylint: disable=g-import-not-at-top

  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  found = []
  for name in sorted(glob.glob(os.path.join(str(folder), 'events.out.tfevents.*'))):
    with open(name, 'rb') as f:
      data = f.read()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack('<Q', data[offset:offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      found += [(event.step, value.tag) for value in event.summary.value]
  return found


def _mount_small_tmpfs(path, size: str) -> bool:
  import subprocess  # pylint: disable=g-import-not-at-top
  os.makedirs(path, exist_ok=True)
  return subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                        capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_real_full_disk_stops_the_command_with_one_line(tmp_path, fault_report):
  """The train command on a 3 MB tmpfs (checkpoints every 10 steps, all kept): the disk fills, the command exits
  1 with one `error:` line naming the step to resume from, that step restores, no partial save is left."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  disk = tmp_path / 'disk'
  if not _mount_small_tmpfs(disk, '3M'):
    pytest.skip('cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN); the injected-ENOSPC tests cover the '
                'logic')
  try:
    workdir = disk / 'run'
    env = dict(os.environ, SRCVQ_TCMALLOC='0', XLA_FLAGS='')
    done = subprocess.run(
        [sys.executable, '-m', 'srcvq_jax.train', '--config=configs/ci.py', f'--workdir={workdir}',
         '--config.data.source=synthetic', '--config.train.num_steps=400', '--config.train.checkpoint_every=10',
         '--config.train.keep_checkpoints=1000', '--config.train.sdr_tracks=0'],
        capture_output=True, text=True, timeout=600, env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 1, done.stderr[-3000:]
    # The command's own line (Orbax's TensorStore threads may still print at interpreter exit, after it).
    errors = [line for line in done.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, done.stderr[-3000:]
    last = errors[0]
    assert 'No space left on device' in last or 'RESOURCE_EXHAUSTED' in last, last
    intact = int(last.rsplit('resume from step ', 1)[1])
    checkpoints = os.listdir(workdir / 'checkpoints')
    assert not [c for c in checkpoints if 'tmp' in c], checkpoints
    assert str(intact) in checkpoints
    copy = tmp_path / 'copy'  # the workdir moved to a disk with space restores its newest step
    shutil.copytree(workdir, copy)
  finally:
    subprocess.run(['umount', str(disk)], check=False)
  manager = checkpointing.create_manager(str(copy), read_only=True)
  assert manager.latest_step() == intact
  from srcvq_jax import config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.config_from_dict(checkpointing.restore_config(manager, intact))
  separator = inference.load(str(copy))
  assert separator.step == intact and config.data.source == 'synthetic'
  fault_report('a real full disk (train command)', 'the workdir on a 3 MB tmpfs, a checkpoint every 10 steps, '
               'all kept', f'exit code 1, last line "{_short(last)}"; no temporary folder left; step {intact} '
               'restores', 'up to one save interval')


def _short(text, limit: int = 220) -> str:
  """A message for a table cell: one line, at most `limit` characters, no absolute temporary paths."""
  text = str(text).replace('\n', ' ').replace('|', '/')
  text = re.sub(r'/tmp/\S*?/(disk/run|run|copy)\b', r'WORKDIR', text)
  return text if len(text) <= limit else text[:limit - 3] + '...'


def test_num_steps_below_the_workdirs_step_says_so(trained_workdir, tmp_path, ci_config, caplog, fault_report):
  workdir = tmp_path / 'run'
  shutil.copytree(trained_workdir, workdir)
  state = trainer.train_and_evaluate(_config(ci_config, num_steps=10), str(workdir))
  assert int(state['step']) == 20
  warning = next(r.getMessage() for r in caplog.records if 'nothing to train' in r.getMessage())
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['10', '20']
  fault_report('`train.num_steps` below the workdir\'s step', '`num_steps=10` on a workdir at step 20',
               f'one warning, "{_short(warning)}"; nothing trained or written; exit 0')


def test_separate_out_an_existing_file_is_refused_before_any_work(tmp_path, fault_report):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  (tmp_path / 'taken.wav').write_bytes(b'not a folder')
  done = subprocess.run([sys.executable, '-m', 'srcvq_jax.separate', 'song.wav', '--workdir=nowhere',
                         f'--out={tmp_path / "taken.wav"}'], capture_output=True, text=True,
                        env=dict(os.environ, SRCVQ_TCMALLOC='0'), timeout=300,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith('error: --out=')
  assert 'is a file' in done.stderr
  fault_report('`separate --out=` an existing file', 'a file passed as --out',
               f'exit code 2 before loading the model: "{_short(done.stderr.strip().splitlines()[-1])}"', '-')


def _train_command(workdir, fault=None, **overrides):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, SRCVQ_TCMALLOC='0', XLA_FLAGS='')
  env.pop(loop.TEST_FAULT, None)
  if fault:
    env[loop.TEST_FAULT] = fault
  flags = [f'--config.train.{k}={v}' for k, v in overrides.items()]
  return subprocess.run([sys.executable, '-m', 'srcvq_jax.train', '--config=configs/ci.py', f'--workdir={workdir}',
                         '--config.data.source=synthetic', '--config.train.sdr_tracks=0', *flags],
                        capture_output=True, text=True, timeout=600, env=env,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
@pytest.mark.parametrize('fault', ['kill_after_step:15', 'kill_in_save:20'])
def test_kill_9_resumes_from_the_newest_complete_step(tmp_path, fault, fault_report):
  """SIGKILL at a fixed point (after step 15's update; right after step 20's async save started, its commit in
  flight): the rerun resumes from the newest step whose save completed, no temporary folder is left, and it ends
  at num_steps with the parameters of an uninterrupted run, bit for bit (its batches are a function of the step)."""
  workdir = tmp_path / 'run'
  killed = _train_command(workdir, fault, num_steps=30)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  left = sorted(os.listdir(workdir / 'checkpoints'))
  complete = [int(name) for name in left if name.isdigit()]
  expected = max(complete, default=0)
  assert expected in (10, 20), left
  resumed = _train_command(workdir, num_steps=30)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  if expected:
    assert f'at step {expected}' in next(line for line in resumed.stderr.splitlines() if 'resumed from' in line)
  after = sorted(os.listdir(workdir / 'checkpoints'))
  assert not [name for name in after if 'tmp' in name] and '30' in after, after
  uninterrupted = _train_command(tmp_path / 'uninterrupted', num_steps=30)
  assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
  final = [inference.load(str(path)).params for path in (workdir, tmp_path / 'uninterrupted')]
  jax.tree.map(np.testing.assert_array_equal, *final)
  in_flight = [name for name in left if 'tmp' in name]
  fault_report(f'kill -9 {"mid-run" if fault.startswith("kill_after") else "while a save is written"}',
               f'`{loop.TEST_FAULT}={fault}` (the trainer SIGKILLs itself {"after step 15" if "after" in fault else "with step 20 async save in flight"})',
               f'exit -9 with checkpoints {", ".join(left)}; the rerun resumes at step {expected}'
               + (f', the unfinished {", ".join(in_flight)} removed' if in_flight else '')
               + ', reaches step 30 with the params of an uninterrupted run, bit for bit',
               f'{(15 if "after" in fault else 20) - expected} steps (at most one save interval)')


def test_a_lock_whose_pid_is_gone_on_this_machine_is_stale_at_once(tmp_path, caplog, fault_report):
  """kill -9 leaves the lock behind; on the same host and boot a dead pid makes it stale without waiting for the
  heartbeat to age; on another host (or an unknown boot) the same lock is still respected."""
  import socket  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  gone = subprocess.Popen(['true'])
  gone.wait()  # a pid that ran here and is gone
  boot_id = workdir_lock._boot_id()  # pylint: disable=protected-access
  if boot_id is None:
    pytest.skip('no /proc/sys/kernel/random/boot_id on this system')
  workdir = str(tmp_path / 'run')
  _write_lock(workdir, heartbeat_age_s=10, host=socket.gethostname(), pid=gone.pid)
  with open(os.path.join(workdir, workdir_lock.LOCK_FILE)) as f:
    record = json.load(f)
  for other in ({'host': 'other-host', 'boot_id': boot_id}, {'host': socket.gethostname(), 'boot_id': 'other'}):
    with open(os.path.join(workdir, workdir_lock.LOCK_FILE), 'w') as f:
      json.dump(dict(record, **other), f)
    with pytest.raises(workdir_lock.WorkdirLocked):
      workdir_lock.WorkdirLock(workdir).acquire()
  with open(os.path.join(workdir, workdir_lock.LOCK_FILE), 'w') as f:
    json.dump(dict(record, boot_id=boot_id), f)
  with workdir_lock.WorkdirLock(workdir) as lock:
    assert json.load(open(lock.path))['token'] == lock.record['token']
  warning = next(r.getMessage() for r in caplog.records if 'stale lock' in r.getMessage())
  assert 'no longer runs on this machine' in warning
  fault_report('the lock of a killed trainer (kill -9, OOM) on the same machine',
               'a lock with a 10 s old heartbeat whose pid has exited, same host name and boot id',
               f'taken over at once with one warning ("{_short(warning)}"); the same lock from another host or '
               'boot is still refused')
