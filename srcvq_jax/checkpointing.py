"""Orbax checkpoints: every Orbax call of the project is in this module.

Layout: WORKDIR/checkpoints/<step>/{state, config}. Saves are async (training goes on while the previous save is
written; Orbax commits through a temporary directory, so a crash never leaves a half-written step behind),
the latest `keep` steps are kept, and a run always resumes from the latest step. Nothing here ever deletes a
workdir. Every process calls these functions (Orbax coordinates multi-host writes).
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

CHECKPOINT_DIR = 'checkpoints'
STATE = 'state'
CONFIG = 'config'


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


def restore_config(manager: ocp.CheckpointManager, step: int) -> dict:
  """The config (as a dict) saved with `step`."""
  return manager.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))[CONFIG]


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
