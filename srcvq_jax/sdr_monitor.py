"""SDR while training: the evaluation's museval-exact SDR on fixed validation excerpts, from argmax integer codes.

At every evaluation of the training loop, on the first `train.sdr_tracks` tracks of the validation split (the
first `train.sdr_seconds` seconds of each; synthetic tracks when data.source = 'synthetic'):
  val_sdr/model/<source>    each slot decoded alone from the mixture's argmax codes (separation), as `evaluate`
                            scores it (same Separator, same scoring function: evaluate.score_track);
  val_sdr/oracle/<source>   the codec ceiling: each stem alone in, its own slot out;
  val_sdr/soft_gap/<source> SDR of the soft codes (softmax(logits / tau) weighted entries, no noise: what training
                            decodes, minus its noise) minus that of the argmax codes, both decoded in one call on the
                            whole excerpt: how much the train/inference mismatch costs;
and '/avg' of each over sources. A run is judged by this curve, not by the loss.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx


def excerpts(config, split: str, num_tracks: int, seconds: float) -> list[tuple[str, np.ndarray]]:
  """(name, stems [S, T, C]) of the first `num_tracks` tracks of `split`, cut to `seconds` (at the model's rate)."""
  from srcvq_jax import synthetic_data  # pylint: disable=g-import-not-at-top
  from srcvq_jax import tfds_data  # pylint: disable=g-import-not-at-top

  length = int(round(seconds * config.data.sample_rate))
  if config.data.source == 'synthetic':
    tracks = synthetic_data.synthetic_tracks(config, split, num_tracks, seconds)
  else:
    tracks = tfds_data.load_tracks(config, split)
  chosen = []
  for name, stems in tracks:
    chosen.append((name, np.asarray(stems[:, :length], np.float32)))
    if len(chosen) == num_tracks:
      break
  return chosen


def _soft_and_argmax(graphdef, params, mixture, masks, tau):
  """Audio [2, N, M, T, C] of the soft codes (no noise) and of the argmax codes, one call on whole inputs."""
  model = nnx.merge(graphdef, params)
  argmax = model.encode(mixture)
  soft = model.encode(mixture, gumbel=jnp.zeros(argmax.codes.shape + model.encoder.logit_shape[-1:]), tau=tau)
  return jnp.stack([model.decode(soft.vectors, masks), model.decode(argmax.vectors, masks)])


class SDRMonitor:
  """Scores a training run's current params on fixed validation excerpts (see the module docstring)."""

  def __init__(self, config, graphdef, *, split: str | None = None):
    self.config = config
    self.graphdef = graphdef
    split = split or config.data.eval_split
    self.tracks = excerpts(config, split, int(config.train.sdr_tracks), float(config.train.sdr_seconds))
    if not self.tracks:
      raise ValueError(f'no tracks in split {split!r} for the in-training SDR (train.sdr_tracks=0 turns it off)')
    self.sources = tuple(config.data.sources)
    self._separator = None
    self._jit_soft = jax.jit(functools.partial(_soft_and_argmax, graphdef))
    logging.info('in-training SDR: %d %s excerpts of %.1f s', len(self.tracks), split, config.train.sdr_seconds)

  def scores(self, params, tau) -> dict[str, float]:
    """{'val_sdr/<row>/<source or avg>': dB} for the current params; {} on processes other than 0 (only process 0
    writes metrics) and where this process cannot see whole params (fsdp over hosts)."""
    if jax.process_index() != 0:
      return {}
    if not all(x.is_fully_addressable or x.is_fully_replicated for x in jax.tree.leaves(params)):
      logging.log_first_n(logging.WARNING, 'in-training SDR skipped: params are sharded over hosts', 1)
      return {}
    params = jax.tree.map(lambda x: x if x.is_fully_addressable else x.addressable_data(0), params)
    from srcvq_jax import inference  # pylint: disable=g-import-not-at-top

    if self._separator is None:
      self._separator = inference.Separator(self.config, self.graphdef, params)
    else:
      self._separator.set_params(params)
    # Inference runs on the Separator's own (one-device) mesh, not on the training mesh the loop has set.
    with jax.set_mesh(self._separator.mesh):
      return self._scores(tau)

  def _scores(self, tau) -> dict[str, float]:
    from srcvq_jax import evaluate  # pylint: disable=g-import-not-at-top
    from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top

    separator = self._separator
    rate = separator.sample_rate
    num_sources = len(self.sources)
    eye = np.eye(num_sources, dtype=np.float32)
    per_row = {'model': [], 'oracle': [], 'soft_gap': []}
    local_params = separator.params
    for _, stems in self.tracks:
      mixture = stems.sum(0)
      scores = evaluate.score_track(separator, stems, mixture)
      per_row['model'].append(scores['model'])
      per_row['oracle'].append(scores['oracle'])
      length = -(-stems.shape[1] // separator.stride) * separator.stride
      padded = np.pad(mixture, ((0, length - stems.shape[1]), (0, 0)))
      audio = np.asarray(self._jit_soft(local_params, padded[None], eye[None], tau))[:, 0, :, :stems.shape[1]]
      soft = sdr.median_over_windows(sdr.sdr_per_window(stems, audio[0], rate))
      hard = sdr.median_over_windows(sdr.sdr_per_window(stems, audio[1], rate))
      per_row['soft_gap'].append(soft - hard)
    out = {}
    for row, values in per_row.items():
      aggregated = sdr.aggregate_tracks(values)
      for name, value in zip(self.sources, aggregated):
        out[f'val_sdr/{row}/{name}'] = float(value)
      out[f'val_sdr/{row}/avg'] = float(np.mean(aggregated))  # as evaluate's rows: NaN if a source has no score
    return out
