"""One trainer per workdir: WORKDIR/lock.json, held by a training run's process 0 and refreshed by a heartbeat.

A second trainer on the same workdir is refused with one line naming the holder (host, pid, since when, last
heartbeat). A pid means nothing on another host, so a lock is judged by its heartbeat: one not refreshed for
STALE_AFTER_S seconds (the holder was killed, or its machine went away) is taken over, with a warning, after moving
it to lock.json.stale. On the holder's own machine (same host name and the same boot: /proc/sys/kernel/random/
boot_id) a pid does mean something: a lock whose pid no longer runs there is stale at once, so a rerun after
kill -9 or an OOM kill need not wait for the heartbeat to age. Read-only commands (evaluate, separate, export) never look at it.

Local workdirs create the lock with O_CREAT | O_EXCL (atomic: of two trainers starting at once, one wins).
Object stores (gs://) have no exclusive create: there the lock is written and read back through etils.epath,
which refuses a second trainer started after the first one's lock is visible, but two started within the same
second may both proceed; such runs should be started by one scheduler, not by hand.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import threading
import time
import uuid

from absl import logging
from etils import epath

from srcvq_jax import checkpointing
from srcvq_jax import errors

LOCK_FILE = 'lock.json'
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


class WorkdirLocked(errors.UserError):
  """Another live trainer holds the workdir."""


def _now() -> float:
  return time.time()


def _boot_id() -> str | None:
  """This machine's boot id (Linux), None elsewhere: with the host name it says "the same running system"."""
  try:
    with open('/proc/sys/kernel/random/boot_id', encoding='utf-8') as f:
      return f.read().strip() or None
  except OSError:
    return None


def _pid_is_gone(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return True
  except (PermissionError, ValueError, TypeError, OverflowError):
    return False  # it runs under another user (or the record is odd): not known to be gone
  return False


def _stamp(seconds: float) -> str:
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')


class WorkdirLock:
  """Context manager: acquires WORKDIR/lock.json on enter (or raises WorkdirLocked), refreshes it every
  `heartbeat_s` from a daemon thread, and removes it on exit."""

  def __init__(self, workdir: str, *, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S):
    self.path = epath.Path(workdir) / LOCK_FILE
    self.local = checkpointing.is_local(workdir)
    self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
    self.record = {'host': socket.gethostname(), 'boot_id': _boot_id(), 'pid': os.getpid(),
                   'token': uuid.uuid4().hex, 'since': _now(), 'heartbeat': _now()}
    self._stop = threading.Event()
    self._thread = None

  # --- Lock file ---

  def _read(self) -> dict | None:
    try:
      return json.loads(self.path.read_text())
    except FileNotFoundError:
      return None
    except (ValueError, OSError):  # half-written or unreadable: treat as a lock without a heartbeat (stale)
      return {}

  def _write(self, *, exclusive: bool) -> bool:
    text = json.dumps(self.record)
    if not self.local:
      self.path.write_text(text)
      return True
    if exclusive:
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        return False
      with os.fdopen(fd, 'w') as f:
        f.write(text)
      return True
    tmp = f'{self.path}.{self.record["token"]}.tmp'
    with open(tmp, 'w') as f:
      f.write(text)
    os.replace(tmp, self.path)
    return True

  def acquire(self) -> None:
    for _ in range(3):  # (a stale lock moved aside, then a fresh create; a racing trainer may win that)
      held = self._read()
      if held is None:
        if self._write(exclusive=True):
          return
        continue
      age = _now() - float(held.get('heartbeat', 0.0))
      dead_here = (held.get('host') == self.record['host'] and self.record['boot_id'] is not None
                   and held.get('boot_id') == self.record['boot_id'] and _pid_is_gone(held.get('pid')))
      if age < self.stale_after_s and not dead_here:
        raise WorkdirLocked(
            f'{self.path.parent} is being trained by pid {held.get("pid")} on host {held.get("host")} (since '
            f'{_stamp(float(held.get("since", 0.0)))}, heartbeat {age:.0f} s ago): one trainer per workdir; wait '
            f'for it to finish or stop it (a lock whose heartbeat is {self.stale_after_s:.0f} s old is taken over)')
      logging.warning('taking over the stale lock of %s (pid %s on host %s, %s)', self.path.parent,
                      held.get('pid'), held.get('host'), 'which no longer runs on this machine' if dead_here else
                      f'last heartbeat {age:.0f} s ago')
      stale = self.path.parent / (LOCK_FILE + '.stale')
      try:
        self.path.rename(stale) if self.local else self.path.unlink()
      except FileNotFoundError:
        pass  # another trainer moved it first; try again
    raise WorkdirLocked(f'{self.path}: could not take the lock (another trainer is starting on this workdir)')

  def _beat(self) -> None:
    while not self._stop.wait(self.heartbeat_s):
      held = self._read()
      if held and held.get('token') != self.record['token']:
        logging.error('the lock of %s was taken over by pid %s on host %s; this run no longer holds it',
                      self.path.parent, held.get('pid'), held.get('host'))
        return
      self.record['heartbeat'] = _now()
      try:
        self._write(exclusive=False)
      except OSError as e:  # a full disk must not kill training; the lock just ages
        logging.warning('could not refresh %s: %s', self.path, e)

  def release(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
    held = self._read()
    if held and held.get('token') == self.record['token']:
      try:
        self.path.unlink()
      except FileNotFoundError:
        pass

  def __enter__(self):
    self.acquire()
    self._thread = threading.Thread(target=self._beat, name='workdir-lock-heartbeat', daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self.release()
