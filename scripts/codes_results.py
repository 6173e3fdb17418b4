"""Codes as compression: the code stream's size (raw, as a .codes.npz, through lzma, and at its entropy) against
the audio as wav, FLAC, MP3 and Opus at the nearest bitrates, each with its SDR against the original mixture.

  python scripts/codes_results.py --workdir=runs/sweep/best/3000steps-9e5cca20/seed0 --data_dir=data/full/tfds

Audio: the first --seconds of the first --tracks tracks of --split (ChoraleMix test by default), as the model
hears it (its sample rate and channels: the stems decimated as in training, then mixed). The model's row is the
mixture decoded from all slots' codes (a reconstruction; separation is scored by `evaluate`). Entropy: an ideal
arithmetic coder of each (source, codebook)'s code distribution fitted on the --fit_split's tracks (add-one
smoothing), i.e. the test codes' cross-entropy in bits, plus the activity mask (1 bit per slot and frame for a
general file, 0 for an unedited one). SDR: BSSEval v4 (srcvq_jax.sdr), median over 1 s windows, then mean over tracks.
Writes the table to docs/results.md between its `codes:` markers.
"""
from __future__ import annotations

import argparse
import lzma
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results_md  # noqa: E402  (scripts/results_md.py)

BEGIN, END = results_md.markers('codes', 'scripts/codes_results.py')


def ffmpeg_round_trip(audio: np.ndarray, rate: int, codec_args: list[str], suffix: str) -> tuple[np.ndarray, int]:
  """(decoded float32 [T, C] at `rate`, encoded bytes) of audio through ffmpeg with codec_args."""
  with tempfile.TemporaryDirectory() as tmp:
    source, encoded, decoded = (os.path.join(tmp, name) for name in ('in.wav', f'enc{suffix}', 'out.wav'))
    sf.write(source, np.clip(audio, -1, 1), rate, subtype='PCM_16')
    subprocess.run(['ffmpeg', '-v', 'error', '-y', '-i', source, *codec_args, encoded], check=True)
    subprocess.run(['ffmpeg', '-v', 'error', '-y', '-i', encoded, '-ar', str(rate), '-ac', str(audio.shape[1]),
                    decoded], check=True)
    out, _ = sf.read(decoded, dtype='float32', always_2d=True)
    size = os.path.getsize(encoded)
  length = audio.shape[0]
  out = out[:length] if len(out) >= length else np.pad(out, ((0, length - len(out)), (0, 0)))
  return out, size


def mixture_sdr(reference: np.ndarray, estimate: np.ndarray, rate: int) -> float:
  from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top
  return float(sdr.track_sdr(reference[None], estimate[None], rate)[0])


def cross_entropy_bits(test_codes: np.ndarray, fit_codes: np.ndarray, codebook_size: int) -> float:
  """Bits to code test_codes [N, S, H] with a per-(source, codebook) unigram fitted on fit_codes (add-one)."""
  bits = 0.0
  for s in range(test_codes.shape[1]):
    for h in range(test_codes.shape[2]):
      counts = np.bincount(fit_codes[:, s, h], minlength=codebook_size) + 1.0
      log_p = np.log2(counts / counts.sum())
      bits -= log_p[test_codes[:, s, h]].sum()
  return float(bits)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--split', default='test')
  parser.add_argument('--fit_split', default='train')
  parser.add_argument('--tracks', type=int, default=10)
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--cache', default=None, help='folder for the fit split codes (default WORKDIR/codes_cache)')
  parser.add_argument('--results_md', default=os.path.join(REPO, 'docs', 'results.md'))
  args = parser.parse_args()

  from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top
  from srcvq_jax import inference  # pylint: disable=g-import-not-at-top
  from srcvq_jax.prior import data as prior_data  # pylint: disable=g-import-not-at-top

  separator = inference.load(args.workdir)
  separator.config.data.data_dir = args.data_dir
  rate, channels = separator.sample_rate, separator.channels
  fit = prior_data.encode_split(separator, args.fit_split, args.cache or os.path.join(args.workdir, 'codes_cache'))
  tracks = []
  for name, stems in prior_data.split_tracks(separator.config, args.split):
    tracks.append((name, np.asarray(stems[:, :int(args.seconds * rate)], np.float32).sum(0)))
    if len(tracks) == args.tracks:
      break
  seconds = sum(len(m) for _, m in tracks) / rate
  opus_kbps = int(round(separator.frames_per_second * sum(separator.codes_per_source) *
                        np.log2(separator.codebook_size) / 1000))
  codecs = {f'MP3 {k} kbit/s (LAME CBR)': (['-c:a', 'libmp3lame', '-b:a', f'{k}k'], '.mp3') for k in (16, 24, 32)}
  codecs.update({f'Opus {k} kbit/s': (['-c:a', 'libopus', '-b:a', f'{k}k'], '.opus') for k in (12, opus_kbps)})
  codecs['FLAC (lossless)'] = (['-c:a', 'flac'], '.flac')

  sizes = {'wav (16-bit PCM)': 0.0, 'codes: raw stream': 0.0, 'codes: .codes.npz file': 0.0,
           'codes: lzma of the stream': 0.0, 'codes: entropy (fitted unigram)': 0.0, **{k: 0.0 for k in codecs}}
  sdrs = {k: [] for k in sizes}
  for name, mixture in tracks:
    codes = codes_lib.encode_audio(separator, mixture, rate)
    decoded = codes_lib.decode_audio(separator, codes, together=True)[0]
    model_sdr = mixture_sdr(mixture, decoded, rate)
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'x.codes.npz')
      codes_lib.save(path, codes)
      sizes['codes: .codes.npz file'] += 8 * os.path.getsize(path)
    stream = codes.codes.astype(codes_lib.code_dtype(codes.codebook_size))
    sizes['codes: raw stream'] += codes.raw_bitrate() * len(mixture) / rate
    sizes['codes: lzma of the stream'] += 8 * len(lzma.compress(stream.tobytes(), preset=9 | lzma.PRESET_EXTREME))
    sizes['codes: entropy (fitted unigram)'] += cross_entropy_bits(codes.codes, fit['codes'], codes.codebook_size)
    for key in ('codes: raw stream', 'codes: .codes.npz file', 'codes: lzma of the stream',
                'codes: entropy (fitted unigram)'):
      sdrs[key].append(model_sdr)
    sizes['wav (16-bit PCM)'] += 16 * mixture.size
    sdrs['wav (16-bit PCM)'].append(mixture_sdr(mixture, np.round(np.clip(mixture, -1, 1) * 32767) / 32767, rate))
    for key, (codec_args, suffix) in codecs.items():
      decoded, size = ffmpeg_round_trip(mixture, rate, codec_args, suffix)
      sizes[key] += 8 * size
      sdrs[key].append(mixture_sdr(mixture, decoded, rate))
    print(f'{name}: model {model_sdr:.2f} dB', flush=True)

  lines = [f'{len(tracks)} tracks of the {args.split} split x first {args.seconds:g} s ({seconds:.0f} s of audio) at '
           f'{rate} Hz, {channels} channels; model: `{os.path.relpath(args.workdir, REPO)}` (step '
           f'{separator.step}, fingerprint {codes_lib.separator_fingerprint(separator)}); entropy model fitted on '
           f'the {args.fit_split} split\'s {len(fit["starts"]) - 1} tracks. SDR of the decoded mixture against the '
           'original (dB; BSSEval v4, median over 1 s windows, mean over tracks).', '',
           '| format | kbit/s | SDR dB |', '|---|---|---|']
  for key in sizes:
    value = np.array(sdrs[key], np.float64)
    shown = 'lossless' if key.startswith('FLAC') else f'{np.mean(value[np.isfinite(value)]):.2f}'
    lines.append(f'| {key} | {sizes[key] / seconds / 1000:.1f} | {shown} |')
  lines.append('')
  lines.append(f'Command: `python scripts/codes_results.py --workdir={os.path.relpath(args.workdir, REPO)} '
               f'--data_dir={args.data_dir} --split={args.split} --tracks={args.tracks} --seconds={args.seconds:g}`')
  body = '\n'.join(lines)
  print(body)
  results_md.write_section(args.results_md, BEGIN, END, body, 'Codes as files: compression')


if __name__ == '__main__':
  main()
