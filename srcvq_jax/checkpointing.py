"""Orbax checkpoints: every Orbax call of the project is in this module.

Layout: WORKDIR/checkpoints/<step>/{state, config}. Saves are async (training goes on while the previous save is
written; Orbax commits through a temporary directory, so a crash never leaves a half-written step behind),
the latest `keep` steps are kept, and a run always resumes from the latest step. Nothing here ever deletes a
workdir. Every process calls these functions (Orbax coordinates multi-host writes).
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from absl import logging

import jax
import orbax.checkpoint as ocp
from etils import epath

from srcvq_jax import errors

CHECKPOINT_DIR = 'checkpoints'
STATE = 'state'
CONFIG = 'config'
# The state's entry holding the params' moving average, where the training config keeps one (optim.ema_decay).
EMA_PARAMS = 'ema_params'
# Steps that failed to restore are moved here (never deleted), so that the next save of that step does not collide.
CORRUPT_DIR = 'corrupt'


def is_local(path: str) -> bool:
  """True for a path of the local file system (no scheme such as gs://)."""
  return '://' not in str(path)


def absolute(path: str) -> str:
  """Absolute local path (Orbax wants one); URLs such as gs://bucket/run go to Orbax as they are (every file of
  the project's workdirs goes through etils.epath or Orbax, so a workdir or export can be a gs:// URL)."""
  return os.path.abspath(path) if is_local(path) else path


def create_manager(workdir: str, *, keep: int = 3, async_save: bool = True,
                   read_only: bool = False) -> ocp.CheckpointManager:
  """CheckpointManager over WORKDIR/checkpoints (created if missing, never wiped)."""
  directory = absolute(os.path.join(workdir, CHECKPOINT_DIR))
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep,
      enable_async_checkpointing=async_save,
      create=not read_only,
      read_only=read_only,
  )
  return ocp.CheckpointManager(directory, options=options, item_names=(STATE, CONFIG))


def save(manager: ocp.CheckpointManager, step: int, state: Any, config_dict: dict) -> bool:
  """Starts an (async) save of `state` and the config (JSON) as step `step`."""
  return manager.save(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardSave(state),
      CONFIG: ocp.args.JsonSave(config_dict),
  }))


def abstract_like(state: Any) -> Any:
  """ShapeDtypeStructs with the shardings of `state` (the restore target)."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None)), state)


def restore(manager: ocp.CheckpointManager, step: int, target: Any) -> Any:
  """Restores the state of `step` with the shapes, dtypes and shardings of `target` (arrays or abstract)."""
  restored = manager.restore(step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(
      abstract_like(target))}))
  return restored[STATE]


def reason(error: BaseException) -> str:
  """One short line of an exception (its type and first line), for warnings and errors."""
  text = str(error).strip().splitlines()
  first = next((line.strip() for line in text if line.strip()), '')
  return f'{type(error).__name__}: {first[:200]}' if first else type(error).__name__


def move_aside(manager: ocp.CheckpointManager, step: int) -> str | None:
  """Moves CHECKPOINTS/<step> to CHECKPOINTS/corrupt/<step>[.n] (process 0; local or gs://); returns where."""
  if jax.process_index() != 0:
    return None
  directory = epath.Path(manager.directory)
  source = directory / str(step)
  if not source.exists():
    return None
  (directory / CORRUPT_DIR).mkdir(parents=True, exist_ok=True)
  target, n = directory / CORRUPT_DIR / str(step), 1
  while target.exists():
    target, n = directory / CORRUPT_DIR / f'{step}.{n}', n + 1
  source.rename(target)
  return str(target)


def remove_partial_saves(directory) -> list[str]:
  """Deletes the temporary folders of unfinished saves in CHECKPOINTS (`<step>.orbax-checkpoint-tmp*`: never a
  checkpoint, Orbax would remove them at the next start) and returns their names. Called after a failed write,
  when the space they take is what a full disk needs."""
  removed = []
  for path in sorted(epath.Path(directory).glob('*.orbax-checkpoint-tmp*')):
    try:
      path.rmtree() if path.is_dir() else path.unlink()
      removed.append(path.name)
    except OSError as error:
      logging.warning('could not remove the partial save %s: %s', path, reason(error))
  return removed


def restore_latest(manager: ocp.CheckpointManager, restore_step: Callable[[int], Any], *, move_bad: bool,
                   check: Callable[[int, BaseException], None] | None = None) -> tuple[Any, int | None]:
  """(restore_step(step), step) of the newest step that restores, walking back over steps that do not (truncated
  files, missing metadata, empty step folders): each is one warning naming the step and the problem, and with
  `move_bad` (a trainer, which will save that step again) it is moved to CHECKPOINTS/corrupt/. (None, None) when
  no step restores (or there is none).

  restore_step: step -> what was restored (e.g. `lambda step: restore(manager, step, target)`).
  check: called with (step, error) before a failed step is treated as corrupt; it may raise instead (e.g. a
    config whose model differs from the checkpoint's: the user's mistake, not a broken file).
  """
  result, found, moved_any = None, None, False
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      result, found = restore_step(step), step
      break
    except Exception as error:  # pylint: disable=broad-except  (Orbax and TensorStore raise many types)
      if check is not None:
        check(step, error)
      moved = move_aside(manager, step) if move_bad else None
      moved_any = moved_any or moved is not None
      logging.warning('checkpoint step %d in %s does not restore (%s); %s', step, manager.directory,
                      reason(error), f'moved it to {moved}; trying the step before' if moved else
                      'trying the step before')
  if moved_any:
    manager.reload()  # the manager's list of steps no longer has the moved ones
  return result, found


def restore_config(manager: ocp.CheckpointManager, step: int) -> dict:
  """The config (as a dict) saved with `step`."""
  return manager.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))[CONFIG]


# --- Params only, for inference (read-only; any model) -------------------------------------------------------------


def open_read_only(workdir: str) -> ocp.CheckpointManager:
  """A read-only CheckpointManager of WORKDIR/checkpoints holding at least one finished step (the caller closes
  it); errors.UserError naming what is missing otherwise."""
  if not epath.Path(workdir).is_dir():
    raise errors.UserError(f'--workdir={workdir} does not exist')
  directory = epath.Path(workdir) / CHECKPOINT_DIR
  if not directory.is_dir():
    raise errors.UserError(f'no checkpoints in {workdir} (no {CHECKPOINT_DIR}/ folder): is it the --workdir of a '
                           'training run?')
  manager = create_manager(workdir, read_only=True)
  if manager.latest_step() is None:
    manager.close()
    raise errors.UserError(f'no checkpoint yet: {directory} holds no finished checkpoint; train until the first '
                           'train.checkpoint_every step')
  return manager


def ema_decay(config_dict: dict) -> float:
  """A config dict's optim.ema_decay, the decay of the params' moving average (0, none kept, where it lacks the
  key: configs written before it, the prior's)."""
  return float(config_dict.get('optim', {}).get('ema_decay', 0.0))


def inference_params_key(config_dict: dict) -> str:
  """The entry of a training checkpoint's state that inference reads: 'ema_params' (the params' moving average)
  where its config kept one (optim.ema_decay > 0), else 'params'."""
  return EMA_PARAMS if ema_decay(config_dict) > 0 else 'params'


def restore_params(manager: ocp.CheckpointManager, step: int, target: Any, key: str = 'params') -> Any:
  """Only the params (or another params-shaped entry, `key`) of a training checkpoint's state (Orbax reads just
  those arrays: the optimizer moments, about two thirds of the checkpoint, are never read), with the shapes, dtypes
  and shardings of `target`."""
  item = {key: abstract_like(target)}
  restored = manager.restore(step, args=ocp.args.Composite(**{STATE: ocp.args.PyTreeRestore(
      item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item), partial_restore=True)}))
  return restored[STATE][key]


def load_params(workdir: str, build: Callable[[dict], tuple[Any, Any]],
                step: int | None = None) -> tuple[Any, Any, int]:
  """(model, params, step) of the newest step of WORKDIR/checkpoints that restores (or of `step`).

  Read-only: a step that does not restore is a warning and the step before is tried (nothing is moved; the
  trainer moves broken steps aside when it resumes).

  Args:
    workdir: the --workdir of a training run (the VQ-VAE's, the prior's: any model).
    build: the step's config dict -> (model, the params as arrays or ShapeDtypeStructs with shardings), where
      `model` is whatever the caller needs with the params (e.g. the config and graphdef), returned as is; it may
      raise errors.UserError for a config it cannot serve (e.g. another model's workdir), which is raised as is.
    step: a specific checkpoint step (default: the newest that restores).

  Raises:
    errors.UserError: no such workdir, no checkpoint, no checkpoint `step` or it does not restore, or none does.
  """
  manager = open_read_only(workdir)

  def restore_step(candidate):
    config_dict = restore_config(manager, candidate)
    model, target = build(config_dict)
    return model, restore_params(manager, candidate, target, inference_params_key(config_dict))

  def reraise_user_errors(candidate, error):
    del candidate
    if isinstance(error, errors.UserError):
      raise error

  try:
    if step is not None:
      if step not in manager.all_steps():
        raise errors.UserError(f'no checkpoint of step {step} in {manager.directory} (steps: '
                               f'{sorted(manager.all_steps())})')
      try:
        model, params = restore_step(step)
      except errors.UserError:
        raise
      except Exception as e:  # pylint: disable=broad-except  (Orbax and TensorStore raise many types)
        raise errors.UserError(f'checkpoint step {step} in {manager.directory} does not restore ({reason(e)})'
                               ) from None
    else:
      restored, step = restore_latest(manager, restore_step, move_bad=False, check=reraise_user_errors)
      if step is None:
        raise errors.UserError(f'no checkpoint in {manager.directory} restores (steps '
                               f'{sorted(manager.all_steps())} are all broken: see the warnings above)')
      model, params = restored
  finally:
    manager.close()
  return model, params, int(step)


# --- Inference export: params + config, no optimizer state --------------------------------------------------------

EXPORT_PARAMS = 'params'
EXPORT_CONFIG = 'config.json'


def save_export(export_dir: str, params: Any, config_dict: dict) -> None:
  """Writes an inference-only checkpoint: EXPORT_DIR/params (Orbax) and EXPORT_DIR/config.json (synchronous)."""
  directory = epath.Path(absolute(export_dir))
  directory.mkdir(parents=True, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory / EXPORT_PARAMS, params, force=True)
    checkpointer.wait_until_finished()
  if jax.process_index() == 0:
    (directory / EXPORT_CONFIG).write_text(json.dumps(config_dict, indent=2))


def is_export(path: str) -> bool:
  return (epath.Path(path) / EXPORT_CONFIG).is_file() and (epath.Path(path) / EXPORT_PARAMS).is_dir()


def load_export_config(export_dir: str) -> dict:
  return json.loads((epath.Path(export_dir) / EXPORT_CONFIG).read_text())


def restore_export_params(export_dir: str, target: Any) -> Any:
  """Params of an export with the shapes/dtypes/shardings of `target` (arrays or abstract)."""
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(epath.Path(absolute(export_dir)) / EXPORT_PARAMS, abstract_like(target))
