"""The bass prior measured: per-codebook NLL and top-1 accuracy on the test split against baselines, the NLL with
another track's conditioning, and generated bass lines against the true bass; a spectrogram and audio samples.

  python scripts/prior_results.py --workdir=VQVAE_DIR --prior_workdir=PRIOR_DIR --baseline_workdir=WITHHELD_DIR \\
      --data_dir=data/full/tfds

Rows (test split; codes of the real mixtures, argmax, from the VQ-VAE of --workdir):
  prior                  p(bass codes | other sources' codes), the trained prior of --prior_workdir;
  context withheld       the same prior trained with prior.condition=False (--baseline_workdir);
  most frequent code     the training split's most frequent code per codebook (its NLL: the training split's
                         code frequencies, add-one smoothed);
  other track's context  the prior given the other sources' codes of another test track (track i + 1): its NLL
                         must rise if the prior uses the other sources.
Generation (first --gen_tracks tracks x first --seconds s, temperature --temperature, seed = track index): the bass
decoded from sampled codes (given the mixture's other-slot codes, and given the codes of the mixture without its
bass) vs the true bass stem, beside the codec's own bass (the bass slot of the mixture's codes) and a bass of
uniformly random codes: SDR (BSSEval v4, median over 1 s windows), log-mel L1 distance (64 mel bands,
natural log), and the harmony agreement = mean cosine similarity per frame between the bass's chroma and the chroma
of the pitched other sources (vocals + other). Writes docs/results.md between its `prior:` markers, and
docs/samples/prior/ (spectrogram PNG, Ogg Vorbis excerpts).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results_md  # noqa: E402  (scripts/results_md.py)

BEGIN, END = results_md.markers('prior', 'scripts/prior_results.py')
PAD_TO = 1024  # frames: tracks are padded to a multiple (one compiled shape per padded length)


def prior_scores(model, tracks, context_tracks=None):
  """(NLL [H], accuracy [H]) of the target slot over all frames of `tracks` ([T'_i, S, H] each); the other slots
  from context_tracks[i] when given (cropped to the shorter of the two)."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top

  from srcvq_jax.prior import train as prior_train  # pylint: disable=g-import-not-at-top

  per_frame = nnx.jit(prior_train.nll_and_accuracy)

  nll_sum, correct_sum, count = 0.0, 0.0, 0
  for i, codes in enumerate(tracks):
    codes = np.array(codes, np.int32)
    if context_tracks is not None:
      context = context_tracks[i]
      length = min(len(codes), len(context))
      codes, context = codes[:length], context[:length]
      keep = codes[:, model.target].copy()
      codes = np.array(context, np.int32)
      codes[:, model.target] = keep
    length = len(codes)
    padded = np.pad(codes, ((0, -length % PAD_TO), (0, 0), (0, 0)))
    nll, correct = jax.device_get(per_frame(model, padded[None]))
    nll_sum = nll_sum + nll[0, :length].sum(0)
    correct_sum = correct_sum + correct[0, :length].sum(0)
    count += length
  return nll_sum / count, correct_sum / count


def unigram_scores(train_codes, test_codes, target: int, codebook_size: int):
  """(NLL [H] of the training split's add-one code frequencies, accuracy [H] of its most frequent code)."""
  nll, accuracy = [], []
  for h in range(train_codes.shape[2]):
    counts = np.bincount(train_codes[:, target, h], minlength=codebook_size) + 1.0
    p = counts / counts.sum()
    nll.append(float(-np.log(p[test_codes[:, target, h]]).mean()))
    accuracy.append(float((test_codes[:, target, h] == np.argmax(counts)).mean()))
  return np.array(nll), np.array(accuracy)


def log_mel_l1(reference: np.ndarray, estimate: np.ndarray, rate: int) -> float:
  import librosa  # pylint: disable=g-import-not-at-top

  mel = lambda x: np.log(1e-5 + librosa.feature.melspectrogram(y=x.mean(-1), sr=rate, n_fft=2048, hop_length=512,
                                                                n_mels=64))
  return float(np.abs(mel(reference) - mel(estimate)).mean())


def harmony(bass: np.ndarray, pitched: np.ndarray, rate: int) -> float:
  """Mean cosine similarity per frame of the two signals' chroma (frames where both have energy)."""
  import librosa  # pylint: disable=g-import-not-at-top

  chroma = lambda x: librosa.feature.chroma_stft(y=x.mean(-1), sr=rate, n_fft=4096, hop_length=1024)
  a, b = chroma(bass), chroma(pitched)
  energy = lambda x: np.sqrt((x.mean(-1)[:len(x) // 1024 * 1024].reshape(-1, 1024) ** 2).mean(-1))
  frames = min(a.shape[1], b.shape[1], len(energy(bass)))
  a, b = a[:, :frames], b[:, :frames]
  active = (energy(bass)[:frames] > 1e-3) & (energy(pitched)[:frames] > 1e-3)
  cos = (a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0) + 1e-9)
  return float(cos[active].mean()) if active.any() else float('nan')


def spectrogram_png(path, rows, rate, title):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from scipy import signal  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.7 * len(rows)), sharex=True)
  for ax, (label, audio) in zip(axes, rows):
    f, t, z = signal.stft(audio.mean(-1), fs=rate, nperseg=2048, noverlap=1536)
    ax.pcolormesh(t, f, 20 * np.log10(np.abs(z) + 1e-6), vmin=-100, vmax=-20, shading='auto', rasterized=True)
    ax.set_ylim(0, 1500)
    ax.set_title(label, fontsize=8)
  axes[-1].set_xlabel('s')
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True, help='the VQ-VAE')
  parser.add_argument('--prior_workdir', required=True)
  parser.add_argument('--baseline_workdir', default=None, help='the prior trained with prior.condition=False')
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--split', default='test')
  parser.add_argument('--gen_tracks', type=int, default=10)
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--temperature', type=float, default=0.7)
  parser.add_argument('--top_k', type=int, default=0)
  parser.add_argument('--results_md', default=os.path.join(REPO, 'docs', 'results.md'))
  parser.add_argument('--samples', default=os.path.join(REPO, 'docs', 'samples', 'prior'))
  args = parser.parse_args()

  from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top
  from srcvq_jax import generate_bass, inference, sdr  # pylint: disable=g-import-not-at-top
  from srcvq_jax.prior import data as prior_data  # pylint: disable=g-import-not-at-top

  separator = inference.load(args.workdir)
  separator.config.data.data_dir = args.data_dir
  prior_config, prior = generate_bass.load_prior(args.prior_workdir, separator)
  target = prior.target
  cache = os.path.join(args.prior_workdir, prior_data.CODES)
  train = prior_data.encode_split(separator, prior_config.data.train_split, cache)
  test = prior_data.encode_split(separator, args.split, cache)
  test_tracks = prior_data.tracks_of(test)
  h = separator.num_codebooks

  rows = {'prior': prior_scores(prior, test_tracks)}
  if args.baseline_workdir:
    _, baseline = generate_bass.load_prior(args.baseline_workdir, separator)
    rows['context withheld'] = prior_scores(baseline, test_tracks)
  rows['most frequent code'] = unigram_scores(train['codes'], test['codes'], target, separator.codebook_size)
  rows["other track's context"] = prior_scores(prior, test_tracks, test_tracks[1:] + test_tracks[:1])

  lines = [f'VQ-VAE `{os.path.relpath(args.workdir, REPO)}` (step {separator.step}, fingerprint '
           f'{codes_lib.separator_fingerprint(separator)}), prior `{os.path.relpath(args.prior_workdir, REPO)}` '
           f'({prior_config.train.num_steps} steps, width {prior_config.prior.width}, {prior_config.prior.num_layers} '
           f'units, reach {prior.reach()} frames each side; non-autoregressive). {args.split} split: '
           f'{len(test_tracks)} tracks, {len(test["codes"])} frames; trained on {len(train["starts"]) - 1} '
           f'{prior_config.data.train_split} tracks ({len(train["codes"])} frames).', '',
           '| bass codes | ' + ' | '.join(f'NLL nats cb{i}' for i in range(h)) + ' | ' +
           ' | '.join(f'top-1 cb{i}' for i in range(h)) + ' |', '|---' * (2 * h + 1) + '|']
  for name, (nll, accuracy) in rows.items():
    lines.append(f'| {name} | ' + ' | '.join(f'{v:.3f}' for v in nll) + ' | ' +
                 ' | '.join(f'{v:.3f}' for v in accuracy) + ' |')
  lines.append(f'\n(Uniform codes: NLL {np.log(separator.codebook_size):.3f} nats per codebook.)\n')

  # --- Generation ---
  rate = separator.sample_rate
  names = list(separator.sources)
  bass_index, pitched = names.index(separator.sources[target]), [names.index(n) for n in ('vocals', 'other')
                                                                  if n in names]
  gen = {k: {'sdr': [], 'mel': [], 'harmony': []} for k in ('true bass', 'codec bass', 'generated bass',
                                                          'generated bass, bass-less context', 'random-code bass')}
  rng = np.random.default_rng(0)
  first = None
  for i, (name, stems) in enumerate(prior_data.split_tracks(separator.config, args.split)):
    if i == args.gen_tracks:
      break
    stems = np.asarray(stems[:, :int(args.seconds * rate)], np.float32)
    mixture = stems.sum(0)
    codes = codes_lib.encode_audio(separator, mixture, rate)
    sampled = codes.replace(codes=generate_bass.sample_target(prior, codes.codes, temperature=args.temperature,
                                                              top_k=args.top_k, seed=i))
    # The mixture's codes of the other slots were encoded from audio that holds the true bass; a bass-less
    # mixture's codes are the context of a real generation (nothing of the true bass in them).
    others = [j for j in range(len(names)) if j != bass_index]
    bassless = codes_lib.encode_audio(separator, stems[others].sum(0), rate)
    bassless = bassless.replace(codes=generate_bass.sample_target(prior, bassless.codes, temperature=args.temperature,
                                                                  top_k=args.top_k, seed=i))
    random_codes = codes.codes.copy()
    random_codes[:, target] = rng.integers(0, separator.codebook_size, random_codes[:, target].shape)
    estimates = {'true bass': stems[bass_index],
                 'codec bass': codes_lib.decode_audio(separator, codes, [names[target]])[0],
                 'generated bass': codes_lib.decode_audio(separator, sampled, [names[target]])[0],
                 'generated bass, bass-less context': codes_lib.decode_audio(separator, bassless, [names[target]])[0],
                 'random-code bass': codes_lib.decode_audio(separator, codes.replace(codes=random_codes),
                                                            [names[target]])[0]}
    reference = stems[bass_index]
    context = stems[pitched].sum(0)
    for key, estimate in estimates.items():
      gen[key]['sdr'].append(float(sdr.track_sdr(reference[None], estimate[None], rate)[0]))
      gen[key]['mel'].append(log_mel_l1(reference, estimate, rate))
      gen[key]['harmony'].append(harmony(estimate, context, rate))
    if first is None:
      hybrid = mixture - estimates['codec bass'] + estimates['generated bass']
      first = (name, estimates, mixture, hybrid)

  lines += [f'Generated bass, temperature {args.temperature:g}'
            f'{f", top-k {args.top_k}" if args.top_k else ""} (first {min(args.gen_tracks, len(test_tracks))} '
            f'{args.split} tracks x first {args.seconds:g} s; mean over tracks; the true bass row is the '
            'reference against itself). "generated bass": sampled given the other slots\' codes of the song\'s '
            'mixture, which was encoded with its bass in it, so those codes can carry some of it (their leakage); '
            '"bass-less context": given the codes of the mixture of the other stems only, the honest generation:', '', '| bass | SDR dB vs true bass | log-mel L1 vs true bass | '
            'chroma agreement with vocals + other |', '|---|---|---|---|']
  for key, values in gen.items():
    s = np.array(values['sdr'])
    shown = 'inf' if key == 'true bass' else f'{np.mean(s[np.isfinite(s)]):.2f}'
    lines.append(f'| {key} | {shown} | {np.mean(values["mel"]):.3f} | {np.nanmean(values["harmony"]):.3f} |')

  os.makedirs(args.samples, exist_ok=True)
  name, estimates, mixture, hybrid = first
  spectrogram_png(os.path.join(args.samples, 'bass_spectrogram.png'),
                  [(k, v) for k, v in estimates.items() if k != 'random-code bass'], rate,
                  f'{name}: true, codec and generated bass (0-1.5 kHz)')
  excerpt = slice(0, int(min(5.0, args.seconds) * rate))
  for file, audio in (('true_bass', estimates['true bass']), ('generated_bass', estimates['generated bass']),
                      ('mixture', mixture), ('hybrid_generated_bass', hybrid)):
    sf.write(os.path.join(args.samples, f'{file}.ogg'), np.clip(audio[excerpt], -1, 1), rate, format='OGG',
             subtype='VORBIS')
  rel = os.path.relpath(args.samples, os.path.dirname(args.results_md))
  lines += ['', f'![true, codec and generated bass]({rel}/bass_spectrogram.png) — listen (first 5 s of {name}): '
            f'[true bass]({rel}/true_bass.ogg), [generated bass]({rel}/generated_bass.ogg), '
            f'[mixture]({rel}/mixture.ogg), [mixture with the generated bass]({rel}/hybrid_generated_bass.ogg).',
            '', 'Command: `python scripts/prior_results.py --workdir=' + os.path.relpath(args.workdir, REPO) +
            f' --prior_workdir={os.path.relpath(args.prior_workdir, REPO)}' +
            (f' --baseline_workdir={os.path.relpath(args.baseline_workdir, REPO)}' if args.baseline_workdir else '') +
            f' --data_dir={args.data_dir} --temperature={args.temperature:g}`']
  body = '\n'.join(lines)
  print(body)
  results_md.write_section(args.results_md, BEGIN, END, body, 'Bass prior')


if __name__ == '__main__':
  main()
