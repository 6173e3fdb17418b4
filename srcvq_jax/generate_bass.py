"""A new bass line for a song from the bass prior: its codes sampled given the song's other sources' codes.

  python -m srcvq_jax.generate_bass song.wav --workdir=DIR --prior_workdir=PRIOR_DIR --out=OUT/ \\
      [--temperature=1.0] [--top_k=0] [--seed=0]

The song is encoded by the VQ-VAE of --workdir (the one the prior of --prior_workdir was trained on: their
fingerprints must match), the prior samples the bass slot's codes for every frame at once (non-autoregressive,
srcvq_jax/prior/model.py), and OUT/ gets, at the song's rate, length and channels:
  bass.wav      the new bass alone (the bass slot of the new codes decoded alone);
  mixture.wav   every slot decoded together with the bass codes replaced;
  hybrid.wav    the original audio minus the decoded original bass plus the decoded new bass;
  codes.npz     the new codes (srcvq_jax.codes format: decode or edit them further).
The same seed gives the same bass.
"""
from __future__ import annotations

import os
import sys

import numpy as np
from absl import app
from absl import flags

from srcvq_jax import cli
from srcvq_jax import errors

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'The VQ-VAE: training workdir or export dir.')
  flags.DEFINE_string('prior_workdir', None, "The bass prior's training workdir.")
  flags.DEFINE_string('out', 'generated', 'Output folder.')
  flags.DEFINE_float('temperature', 1.0, 'Sampling temperature (0: the most likely codes).')
  flags.DEFINE_integer('top_k', 0, 'Sample among the k most likely codes only (0: all).')
  flags.DEFINE_integer('seed', 0, 'Random seed of the sampling.')


def load_prior(prior_workdir: str, separator):
  """(prior config, model) of PRIOR_DIR, checked to be a prior of the separator's VQ-VAE."""
  from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top
  from srcvq_jax.prior import train as prior_train  # pylint: disable=g-import-not-at-top

  config, model, _ = prior_train.load(prior_workdir, separator.config)
  fingerprint = codes_lib.separator_fingerprint(separator)
  if config.vqvae_fingerprint != fingerprint:
    raise errors.UserError(f'the prior of {prior_workdir} learned the codes of model {config.vqvae_fingerprint}, but '
                        f'{separator.path} is model {fingerprint}: pass the VQ-VAE it was trained on')
  return config, model


def sample_target(prior_model, codes: np.ndarray, *, temperature: float, top_k: int, seed: int) -> np.ndarray:
  """codes int [T', S, H] -> the same codes with the prior's target slot sampled anew (one call, whole song)."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top

  from srcvq_jax.prior import model as prior_lib  # pylint: disable=g-import-not-at-top

  @nnx.jit(static_argnames=('temperature', 'top_k'))
  def draw(model, codes, key, temperature, top_k):
    return prior_lib.sample(model(codes), key, temperature=temperature, top_k=top_k)

  new = np.asarray(draw(prior_model, np.asarray(codes, np.int32)[None], jax.random.key(seed),
                        float(temperature), int(top_k)))[0]
  out = np.array(codes, np.int32, copy=True)
  out[:, prior_model.target] = new
  return out


def generate(separator, prior_model, audio: np.ndarray, rate: int, *, temperature: float = 1.0, top_k: int = 0,
             seed: int = 0) -> dict:
  """{'bass', 'mixture', 'hybrid': float32 [T, C] at the input's rate, 'codes': codes.Codes of the new song}."""
  from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top

  original = codes_lib.encode_audio(separator, audio, rate)
  new = original.replace(codes=sample_target(prior_model, original.codes, temperature=temperature, top_k=top_k,
                                             seed=seed))
  target = separator.sources[prior_model.target]
  new_bass = codes_lib.decode_audio(separator, new, [target])[0]
  old_bass = codes_lib.decode_audio(separator, original, [target])[0]
  mixture = codes_lib.decode_audio(separator, new, together=True)[0]
  return {'bass': new_bass, 'mixture': mixture, 'hybrid': np.asarray(audio, np.float32) - old_bass + new_bass,
          'codes': new}


def main(argv):
  paths = argv[1:]
  if len(paths) != 1:
    cli.fail('one input file: python -m srcvq_jax.generate_bass song.wav --workdir=DIR --prior_workdir=DIR '
             '--out=OUT/')
  if not FLAGS.workdir or not FLAGS.prior_workdir:
    cli.fail('--workdir and --prior_workdir are required')
  if FLAGS.temperature < 0 or FLAGS.top_k < 0:
    cli.fail('--temperature and --top_k must be >= 0')
  import soundfile  # pylint: disable=g-import-not-at-top

  from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top
  from srcvq_jax import inference, separate  # pylint: disable=g-import-not-at-top

  try:
    audio, rate = separate.read_audio(paths[0])
  except separate.AudioError as e:
    cli.fail(f'{paths[0]}: {e}', code=1)
  try:
    separator = inference.load(FLAGS.workdir)
    _, prior_model = load_prior(FLAGS.prior_workdir, separator)
  except errors.UserError as e:
    cli.fail(str(e))
  result = generate(separator, prior_model, audio, rate, temperature=FLAGS.temperature, top_k=FLAGS.top_k,
                    seed=FLAGS.seed)
  os.makedirs(FLAGS.out, exist_ok=True)
  for name in ('bass', 'mixture', 'hybrid'):
    soundfile.write(os.path.join(FLAGS.out, f'{name}.wav'), np.clip(result[name], -1.0, 1.0), rate,
                    subtype='PCM_16')
  codes_lib.save(os.path.join(FLAGS.out, 'codes.npz'), result['codes'])
  print(f'{paths[0]} -> {FLAGS.out}/ (bass.wav, mixture.wav, hybrid.wav, codes.npz)', file=sys.stdout, flush=True)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
