"""An interactive page: drop a song, see each source's codes, mute / solo / shift / swap / regenerate in code space,
listen. Served locally (127.0.0.1 by default), no network needed.

  python -m srcvq_jax.app --workdir=DIR [--prior_workdir=PRIOR_DIR] [--port=8000] [--host=127.0.0.1]

FastAPI (Starlette + uvicorn) with one static page (srcvq_jax/app_static/index.html: plain JavaScript and canvas,
no CDN scripts or fonts, no telemetry); the page holds no model logic: every edit is srcvq_jax.codes' and every
decode inference.Separator's. Each browser tab gets its own session id, and a session's songs and edits are its own.
Uploads are limited to MAX_UPLOAD_BYTES and MAX_SECONDS; an unreadable file, a too-long song or a codes file of
another model is a message on the page. Everything the app writes is under one temporary folder (the upload spool
included), removed when the server stops.

HTTP API (JSON unless said):
  POST /api/session                          -> {session}
  POST /api/upload?session=S&role=song|other (multipart 'file') -> the song's view (codes grids, bitrate, entropy)
  POST /api/edit {session, edits: [[kind, value], ...]}  -> the view of the original song with the edits applied in
        order (kinds: range, mute, solo, shift, swap (value: source; the 'other' upload's codes), regenerate
        (value: {temperature, seed}; with a prior))
  GET  /api/audio/S/<mixture|reconstruction|edited|SOURCE>.wav?v=N   -> audio/wav (16-bit) at the song's own rate
  GET  /api/codes/S.codes.npz                -> the edited codes
"""

import dataclasses
import io
import json
import os
import shutil
import tempfile
import threading
import uuid

import numpy as np

from srcvq_jax import cli
from srcvq_jax import errors

MAX_UPLOAD_BYTES = 100 * 2**20
MAX_SECONDS = 600.0
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'app_static')


@dataclasses.dataclass
class Song:
  audio: np.ndarray  # float32 [T, C] at `rate`
  rate: int
  codes: object  # codes.Codes
  name: str


@dataclasses.dataclass
class Session:
  song: Song | None = None
  other: Song | None = None
  edited: object = None  # codes.Codes after the edits
  version: int = 0


class AppError(Exception):
  """Shown on the page as a message (HTTP 400)."""


class Backend:
  """The app's state and handlers, without HTTP (tests call these directly)."""

  def __init__(self, separator, prior=None, *, tmp_dir: str):
    self.separator, self.prior = separator, prior
    self.tmp_dir = tmp_dir
    self.sessions: dict[str, Session] = {}
    self._lock = threading.Lock()  # one model call at a time (the CPU is the bottleneck anyway)

  def new_session(self) -> str:
    session = uuid.uuid4().hex
    self.sessions[session] = Session()
    return session

  def session(self, session: str) -> Session:
    if session not in self.sessions:
      raise AppError('unknown session: reload the page')
    return self.sessions[session]

  # --- Songs ---

  def upload(self, session: str, filename: str, path: str, role: str = 'song') -> dict:
    """Reads and encodes an uploaded file (already saved at `path`); returns the view of the session's song."""
    from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top
    from srcvq_jax import separate  # pylint: disable=g-import-not-at-top

    state = self.session(session)
    if role not in ('song', 'other'):
      raise AppError(f'unknown role {role!r}')
    if os.path.getsize(path) > MAX_UPLOAD_BYTES:
      raise AppError(f'{filename}: larger than {MAX_UPLOAD_BYTES // 2**20} MB')
    try:
      audio, rate = separate.read_audio(path)
    except separate.AudioError as e:
      raise AppError(f'{filename}: {e}') from None
    if audio.shape[0] / rate > MAX_SECONDS:
      raise AppError(f'{filename}: {audio.shape[0] / rate / 60:.1f} minutes; the limit is {MAX_SECONDS / 60:.0f}')
    with self._lock:
      codes = codes_lib.encode_audio(self.separator, audio, rate)
    song = Song(audio=audio, rate=rate, codes=codes, name=filename)
    if role == 'other':
      if state.song is None:
        raise AppError('upload the song first, then the song to swap from')
      state.other = song
      return self.view(session)
    state.song, state.other, state.edited = song, None, codes
    state.version += 1
    return self.view(session)

  def edit(self, session: str, edits) -> dict:
    """Applies `edits` ([[kind, value], ...], in order) to the original song's codes."""
    from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top

    state = self.session(session)
    if state.song is None:
      raise AppError('no song yet: upload one')

    def swap_from(value):
      if state.other is None:
        raise AppError('swap needs a second song: upload it under "swap from"')
      return str(value), state.other.codes, state.other.name

    try:
      codes = codes_lib.apply_edits(state.song.codes, edits, swap_from=swap_from,
                                    more={'regenerate': lambda c, value, frames: self._regenerate(c, dict(value))})
    except codes_lib.CodesError as e:
      raise AppError(str(e)) from None
    except (TypeError, ValueError) as e:
      raise AppError(f'bad edit: {e}') from None
    state.edited = codes
    state.version += 1
    return self.view(session)

  def _regenerate(self, codes, options: dict):
    from srcvq_jax import generate_bass  # pylint: disable=g-import-not-at-top

    if self.prior is None:
      raise AppError('no prior: start the app with --prior_workdir to regenerate the bass')
    temperature, seed = float(options.get('temperature', 1.0)), int(options.get('seed', 0))
    if not 0 <= temperature <= 5:
      raise AppError('temperature must be within 0..5')
    with self._lock:
      new = generate_bass.sample_target(self.prior, codes.codes, temperature=temperature,
                                        top_k=int(options.get('top_k', 0)), seed=seed)
    return codes.replace(codes=new)

  # --- Views and audio ---

  def view(self, session: str) -> dict:
    """What the page draws: per source the code grid [frames][codebooks] and activity, bitrate and entropy."""
    state = self.session(session)
    song, codes = state.song, state.edited
    entropy = []
    for s in range(len(codes.sources)):
      bits = 0.0
      for h in range(codes.num_codebooks):
        counts = np.bincount(codes.codes[:, s, h], minlength=codes.codebook_size)
        p = counts[counts > 0] / counts.sum()
        bits += float(-(p * np.log2(p)).sum())
      entropy.append(bits * codes.frame_rate / 1000)  # kbit/s of this source at its empirical entropy
    envelope = np.abs(song.audio.mean(-1))
    points = max(1, codes.num_frames)
    hop = max(1, len(envelope) // points)
    envelope = envelope[:hop * points].reshape(points, -1).max(-1) if len(envelope) >= points else envelope
    return {
        'session': session, 'version': state.version, 'name': song.name, 'sources': list(codes.sources),
        'frames': codes.num_frames, 'codebooks': codes.num_codebooks, 'codebook_size': codes.codebook_size,
        'frame_rate': codes.frame_rate, 'seconds': song.audio.shape[0] / song.rate, 'sample_rate': song.rate,
        'bitrate_kbps': codes.raw_bitrate() / 1000, 'entropy_kbps': entropy,
        'codes': np.transpose(codes.codes, (1, 0, 2)).tolist(),  # [S][T'][H]
        'active': codes.active.T.astype(int).tolist(),  # [S][T']
        'envelope': np.round(envelope, 4).tolist(), 'has_prior': self.prior is not None,
        'has_other': state.other is not None, 'other_name': state.other.name if state.other else None,
    }

  def audio(self, session: str, which: str) -> tuple[np.ndarray, int]:
    """(float32 [T, C], rate) of 'mixture' (the upload), 'reconstruction' (all slots of the original codes),
    'edited' (all slots of the edited codes, per-frame activity honoured) or one source of the edited codes."""
    from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top

    state = self.session(session)
    if state.song is None:
      raise AppError('no song yet: upload one')
    if which == 'mixture':
      return state.song.audio, state.song.rate
    with self._lock:
      if which == 'reconstruction':
        audio = codes_lib.decode_audio(self.separator, state.song.codes, together=True)[0]
      elif which == 'edited':
        audio = codes_lib.decode_audio(self.separator, state.edited, together=True)[0]
      elif which in state.edited.sources:
        audio = codes_lib.decode_audio(self.separator, state.edited, [which])[0]
      else:
        raise AppError(f'unknown audio {which!r}')
    return audio, state.song.rate

  def codes_file(self, session: str) -> bytes:
    from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top

    state = self.session(session)
    if state.edited is None:
      raise AppError('no song yet: upload one')
    path = os.path.join(self.tmp_dir, f'{session}.codes.npz')
    codes_lib.save(path, state.edited)
    with open(path, 'rb') as f:
      data = f.read()
    os.remove(path)
    return data


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
  import soundfile  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  soundfile.write(buffer, np.clip(audio, -1.0, 1.0), rate, format='WAV', subtype='PCM_16')
  return buffer.getvalue()


def create_app(backend: Backend):
  """The FastAPI app over a Backend."""
  from fastapi import FastAPI, File, Request, UploadFile  # pylint: disable=g-import-not-at-top
  from fastapi.responses import FileResponse, JSONResponse, Response  # pylint: disable=g-import-not-at-top

  app = FastAPI(title='srcvq_jax', docs_url=None, redoc_url=None, openapi_url=None)

  @app.exception_handler(AppError)
  async def app_error(request, error):  # pylint: disable=unused-argument
    return JSONResponse({'error': str(error)}, status_code=400)

  @app.exception_handler(Exception)
  async def any_error(request, error):  # pylint: disable=unused-argument  (a message, never a stack trace)
    return JSONResponse({'error': f'internal error: {type(error).__name__}: {str(error).splitlines()[0][:300]}'
                                  if str(error) else f'internal error: {type(error).__name__}'}, status_code=500)

  @app.get('/')
  def index():
    return FileResponse(os.path.join(STATIC, 'index.html'), media_type='text/html')

  @app.post('/api/session')
  def session():
    return {'session': backend.new_session()}

  @app.post('/api/upload')
  def upload(session: str, role: str = 'song', file: UploadFile = File(...)):
    suffix = os.path.splitext(file.filename or '')[1][:8]
    fd, path = tempfile.mkstemp(suffix=suffix, dir=backend.tmp_dir)
    try:
      with os.fdopen(fd, 'wb') as out:
        size = 0
        while chunk := file.file.read(1 << 20):
          size += len(chunk)
          if size > MAX_UPLOAD_BYTES:
            raise AppError(f'{file.filename}: larger than {MAX_UPLOAD_BYTES // 2**20} MB')
          out.write(chunk)
      return backend.upload(session, file.filename or 'upload', path, role)
    finally:
      os.remove(path)

  @app.post('/api/edit')
  async def edit(request: Request):
    try:
      body = json.loads(await request.body())
      session_id, edits = body['session'], body.get('edits', [])
    except (ValueError, KeyError, TypeError):
      raise AppError('bad request: expected {"session": ..., "edits": [[kind, value], ...]}') from None
    return backend.edit(session_id, edits)

  @app.get('/api/audio/{session}/{which}.wav')
  def audio(session: str, which: str):
    samples, rate = backend.audio(session, which)
    return Response(wav_bytes(samples, rate), media_type='audio/wav', headers={'Cache-Control': 'no-store'})

  @app.get('/api/codes/{session}.codes.npz')
  def codes(session: str):
    return Response(backend.codes_file(session), media_type='application/octet-stream',
                    headers={'Content-Disposition': 'attachment; filename="edited.codes.npz"'})

  return app


def serve(workdir: str, prior_workdir: str | None, host: str, port: int) -> None:
  import uvicorn  # pylint: disable=g-import-not-at-top

  from srcvq_jax import generate_bass, inference  # pylint: disable=g-import-not-at-top

  tmp_dir = tempfile.mkdtemp(prefix='srcvq_app_')
  previous = tempfile.tempdir
  tempfile.tempdir = tmp_dir  # the framework's upload spool (python-multipart) goes there too
  try:
    separator = inference.load(workdir)
    prior = generate_bass.load_prior(prior_workdir, separator)[1] if prior_workdir else None
    backend = Backend(separator, prior, tmp_dir=tmp_dir)
    print(f'serving http://{host}:{port}/ (model {workdir}{", prior " + prior_workdir if prior else ""}); '
          'Ctrl-C stops', flush=True)
    uvicorn.run(create_app(backend), host=host, port=port, log_level='warning')
  finally:
    tempfile.tempdir = previous
    shutil.rmtree(tmp_dir, ignore_errors=True)


def main(argv=None) -> None:
  import argparse  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  parser = argparse.ArgumentParser(prog='python -m srcvq_jax.app', description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True, help='the VQ-VAE: training workdir or export dir')
  parser.add_argument('--prior_workdir', default=None, help="the bass prior's workdir (enables regenerate)")
  parser.add_argument('--host', default='127.0.0.1')
  parser.add_argument('--port', type=int, default=8000)
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  try:
    serve(args.workdir, args.prior_workdir, args.host, args.port)
  except errors.UserError as e:
    cli.fail(str(e))


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
