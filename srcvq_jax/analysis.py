"""Analysis of the learned representation: t-SNE of per-source latents, cluster scores, codebook health, bitrate.

What the paper's Fig. 2 (left) shows, plus numbers that are comparable across runs:
  * slot embeddings of single-source inputs: each ground-truth stem is encoded alone, and the quantized vector of
    that stem's own slot is averaged over ~1 s windows of frames (one point per (window, source)); windows where
    the stem is inactive (RMS below INACTIVE_RMS, -60 dBFS) are skipped, since a silent input's slot says nothing
    about the source. At most `max_points` points (capped per source, seeded) go into the scores and the plot.
  * silhouette score of those points by source label (Euclidean, in [-1, 1]; higher = better separated clusters)
    and k-NN (k = 5) source-classification accuracy, cross-validated with folds grouped by track (a window is never
    classified by its neighbours from the same track) when there are at least two tracks.
  * a t-SNE plot (sklearn, PCA init, fixed seed) coloured by source, written as a PNG with matplotlib's Agg canvas.
    Caveat: with per-source codebooks (quantizer.shared_codebooks=False, the default) slot i's vectors come from
    source i's own codebook, so points of different sources are far apart even before training; the scores are
    comparable between runs of the same codebook setting, and only with shared codebooks do they measure by
    themselves how source-aware the encoder is. The oracle and model SDR rows measure that in every setting.
  * codebook health of the codes of the evaluated mixtures, per source and codebook: perplexity of the code
    histogram (exp of its entropy; K = every entry equally used), fraction of entries used, entropy in bits.
  * bitrate of the code stream: frames/s x S x H x log2 K (raw), and frames/s x sum of the code entropies (what an
    ideal entropy coder of independent codes would need).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# Windows where a stem's RMS is below this (-60 dBFS) count as inactive and give no embedding point.
INACTIVE_RMS = 1e-3
MAX_POINTS = 2000
# slot_leakage_db's value for slots that leak nothing (float32 decodes of silence are exactly 0).
LEAKAGE_FLOOR_DB = -120.0
KNN_NEIGHBOURS = 5
MAX_FOLDS = 5
# Colours of the t-SNE plot, one per source in slot order (matplotlib's tab10 start).
_COLOURS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f')


def bitrate_kbps(frames_per_second: float, codes_per_frame: int, codebook_size: int) -> float:
  """Raw bitrate of the codes with K entries per codebook: frames/s x codes per frame (S x H when every source
  uses all H) x log2 K, in kbit/s."""
  return frames_per_second * codes_per_frame * math.log2(codebook_size) / 1e3


class CodeUsage:
  """Histograms of codes per source and codebook, accumulated over a split."""

  def __init__(self, num_sources: int, num_codebooks: int, codebook_size: int):
    self.counts = np.zeros((num_sources, num_codebooks, codebook_size), np.int64)

  def add(self, codes: np.ndarray) -> None:
    """Adds int codes [..., S, H]."""
    codes = np.asarray(codes).reshape(-1, *self.counts.shape[:2])
    size = self.counts.shape[-1]
    for s in range(self.counts.shape[0]):
      for h in range(self.counts.shape[1]):
        self.counts[s, h] += np.bincount(codes[:, s, h], minlength=size)

  def summary(self, sources: Sequence[str], frames_per_second: float) -> dict:
    """Per source and codebook: perplexity, used fraction, entropy (bits); plus the entropy bitrate.

    Returns:
      {'per_source': {source: {'perplexity': [H], 'used_fraction': [H], 'entropy_bits': [H]}}, 'perplexity': mean,
       'used_fraction': mean, 'entropy_kbps': frames/s x sum of entropies / 1000, 'frames': frames counted}.
    """
    totals = self.counts.sum(-1, keepdims=True)
    probs = self.counts / np.maximum(totals, 1)
    with np.errstate(divide='ignore', invalid='ignore'):
      entropy = -np.sum(np.where(probs > 0, probs * np.log2(probs), 0.0), axis=-1)  # [S, H] bits
    perplexity = 2.0 ** entropy
    used = (self.counts > 0).mean(-1)
    per_source = {name: {'perplexity': perplexity[i].tolist(), 'used_fraction': used[i].tolist(),
                         'entropy_bits': entropy[i].tolist()} for i, name in enumerate(sources)}
    return {'per_source': per_source, 'perplexity': float(perplexity.mean()), 'used_fraction': float(used.mean()),
            'entropy_kbps': float(frames_per_second * entropy.sum() / 1e3), 'frames': int(totals.flat[0])}


class SlotEmbeddings:
  """Window-averaged slot vectors of single-source inputs, with their source labels and track ids."""

  def __init__(self):
    self._points, self._labels, self._groups = [], [], []
    self.inactive = 0

  def add(self, own_vectors: np.ndarray, stems: np.ndarray, frames_per_window: int, stride: int,
          track: int) -> None:
    """Adds one track.

    Args:
      own_vectors: float [S, T', H * D], source i's slot vectors when stem i alone is the input.
      stems: float [S, T, C], the stems (to skip windows where a stem is inactive).
      frames_per_window: frames averaged into one point (~1 s).
      stride: samples per frame.
      track: track id (the cross-validation groups).
    """
    num_sources, frames = own_vectors.shape[:2]
    num_windows = frames // frames_per_window
    if num_windows == 0:  # a track shorter than one window: one (shorter) window
      num_windows, frames_per_window = 1, frames
    for w in range(num_windows):
      f0, f1 = w * frames_per_window, (w + 1) * frames_per_window
      segment = stems[:, f0 * stride:f1 * stride]
      rms = np.sqrt(np.mean(np.square(segment, dtype=np.float64), axis=(1, 2)))
      for s in range(num_sources):
        if rms[s] < INACTIVE_RMS:
          self.inactive += 1
          continue
        self._points.append(own_vectors[s, f0:f1].mean(0))
        self._labels.append(s)
        self._groups.append(track)

  def arrays(self, max_points: int = MAX_POINTS, seed: int = 0):
    """(points [N, H * D], labels [N], groups [N]); at most max_points, capped per source, seeded."""
    if not self._points:
      return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    points, labels, groups = np.stack(self._points), np.asarray(self._labels), np.asarray(self._groups)
    if len(points) <= max_points:
      return points, labels, groups
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    keep = []
    for c in classes:  # at most an equal share per source, so no source dominates the scores
      members = np.flatnonzero(labels == c)
      keep.append(rng.choice(members, min(len(members), max_points // len(classes)), replace=False))
    keep = np.sort(np.concatenate(keep))
    return points[keep], labels[keep], groups[keep]


def cluster_scores(points: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict:
  """Silhouette score and cross-validated k-NN accuracy of source labels.

  Args:
    points: float [N, F].
    labels: int [N] source index.
    groups: int [N] track id; folds never split a track when there are >= 2 tracks.
    seed: fold shuffling seed.

  Returns:
    {'silhouette', 'knn_accuracy', 'knn_folds', 'knn_chance'}; None where there are too few points or classes.
  """
  from sklearn import metrics, model_selection, neighbors  # pylint: disable=g-import-not-at-top

  result = {'silhouette': None, 'knn_accuracy': None, 'knn_folds': 0, 'knn_chance': None}
  classes, counts = np.unique(labels, return_counts=True)
  if len(classes) < 2 or len(points) < 3:
    return result
  result['silhouette'] = float(metrics.silhouette_score(points, labels, metric='euclidean'))
  result['knn_chance'] = float(counts.max() / counts.sum())
  num_tracks = len(np.unique(groups))
  if num_tracks >= 2:
    folds = min(MAX_FOLDS, num_tracks)
    splitter = model_selection.StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(points, labels, groups))
  else:
    folds = min(MAX_FOLDS, int(counts.min()))
    if folds < 2:
      return result
    splitter = model_selection.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(points, labels))
  correct = total = 0
  for train, test in splits:
    if len(train) == 0 or len(test) == 0:
      continue
    knn = neighbors.KNeighborsClassifier(n_neighbors=min(KNN_NEIGHBOURS, len(train)))
    knn.fit(points[train], labels[train])
    correct += int((knn.predict(points[test]) == labels[test]).sum())
    total += len(test)
  if total:
    result['knn_accuracy'] = correct / total
    result['knn_folds'] = len(splits)
  return result


def plot_tsne(points: np.ndarray, labels: np.ndarray, names: Sequence[str], path: str, *, title: str = '',
              seed: int = 0) -> bool:
  """t-SNE of the points coloured by source, saved as a PNG at `path`; False when there are too few points.

  Too few means fewer than 5 distinct points: sklearn's t-SNE divides by the spread of its PCA initialisation and
  crashes the process (a segmentation fault, not an exception) on identical points, which is what collapsed
  codes give (e.g. a model a few steps into training).
  """
  if len(points) < 5 or not np.isfinite(points).all() or len(np.unique(points, axis=0)) < 5:
    return False
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top

  # sklearn requires perplexity < N; 30 is its default for large N.
  perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
  embedded = TSNE(n_components=2, perplexity=perplexity, init='pca', learning_rate='auto',
                  random_state=seed).fit_transform(points.astype(np.float64))
  # Figure + its own Agg canvas (no pyplot): no global state, no display needed.
  figure = Figure(figsize=(5.5, 5))
  axes = figure.add_subplot()
  for i, name in enumerate(names):
    mask = labels == i
    if mask.any():
      axes.scatter(embedded[mask, 0], embedded[mask, 1], s=8, alpha=0.7, label=name,
                   color=_COLOURS[i % len(_COLOURS)])
  axes.set_xticks([])
  axes.set_yticks([])
  axes.legend(loc='best', markerscale=2, frameon=False)
  axes.set_title(title or 't-SNE of per-source slot vectors (single-source inputs)', fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  return True


def embedding_summary(embeddings: SlotEmbeddings, names: Sequence[str], png_path: str | None, *,
                      shared_codebooks: bool, max_points: int = MAX_POINTS, seed: int = 0, title: str = '') -> dict:
  """Cluster scores and (optionally) the t-SNE plot of the collected embeddings."""
  points, labels, groups = embeddings.arrays(max_points, seed)
  summary = {'points': int(len(points)), 'inactive_windows_skipped': int(embeddings.inactive),
             'shared_codebooks': bool(shared_codebooks),
             'points_per_source': {name: int((labels == i).sum()) for i, name in enumerate(names)}}
  summary.update(cluster_scores(points, labels, groups, seed))
  summary['tsne_png'] = None
  if png_path is not None and plot_tsne(points, labels, names, png_path, title=title, seed=seed):
    summary['tsne_png'] = png_path
  return summary


# --- Source awareness that can fail ------------------------------------------------------------------------------


class AwarenessSums:
  """The sums over a track that slot_leakage_db and slot_correlations need, added block by block (a long track
  is scored in blocks: the sums of its blocks are the whole track's, so the scores are too)."""

  def __init__(self, num_sources: int):
    self.energy = np.zeros((num_sources, num_sources))    # [S inputs, S slots]: decoded energy, stem i alone in
    self.dots = np.zeros((num_sources, num_sources))      # [S slots, S references]: <estimate_i, reference_j>
    self.estimate_power = np.zeros(num_sources)
    self.reference_power = np.zeros(num_sources)
    self.values = 0                                       # samples x channels per reference

  def add(self, single_source_decodes: np.ndarray | None, estimates: np.ndarray | None, stems: np.ndarray) -> None:
    """single_source_decodes [S inputs, S slots, T, C] and/or estimates [S, T, C] of one block of stems [S, T, C]."""
    ref = stems.reshape(stems.shape[0], -1).astype(np.float64)
    self.reference_power += np.sum(ref ** 2, axis=1)
    self.values += ref.shape[1]
    if single_source_decodes is not None:
      self.energy += np.sum(np.square(single_source_decodes.astype(np.float64)), axis=(2, 3))
    if estimates is not None:
      est = estimates.reshape(estimates.shape[0], -1).astype(np.float64)
      self.dots += est @ ref.T
      self.estimate_power += np.sum(est ** 2, axis=1)

  def leakage_db(self) -> np.ndarray:
    """slot_leakage_db of the sums: float64 [S]."""
    num = self.energy.shape[0]
    own = np.diag(self.energy)
    others = (self.energy.sum(axis=1) - own) / max(num - 1, 1)
    active = np.sqrt(self.reference_power / max(self.values, 1)) >= INACTIVE_RMS
    with np.errstate(divide='ignore', invalid='ignore'):
      leakage = np.maximum(10 * np.log10(others / own), LEAKAGE_FLOOR_DB)  # no leak at all: the floor, not -inf
    return np.where(active & (own > 0), leakage, np.nan)

  def leakage_matrix_db(self) -> np.ndarray:
    """Where each stem goes: [S inputs, S slots], 10 log10(E[slot j] / E[slot i]) for stem i alone in (0 on the
    diagonal; NaN rows for silent stems). leakage_db is the mean of a row's off-diagonal energies."""
    own = np.diag(self.energy)[:, None]
    active = (np.sqrt(self.reference_power / max(self.values, 1)) >= INACTIVE_RMS)[:, None]
    with np.errstate(divide='ignore', invalid='ignore'):
      matrix = np.maximum(10 * np.log10(self.energy / own), LEAKAGE_FLOOR_DB)
    return np.where(active & (own > 0), matrix, np.nan)

  def correlations(self) -> tuple[np.ndarray, np.ndarray]:
    """slot_correlations of the sums: (own [S], other [S])."""
    norms = np.outer(self.estimate_power, self.reference_power)
    with np.errstate(divide='ignore', invalid='ignore'):
      corr2 = np.where(norms > 0, self.dots ** 2 / norms, np.nan)
    num = corr2.shape[0]
    own = np.diag(corr2).copy()
    other = (np.nansum(corr2, axis=1) - np.nan_to_num(own)) / max(num - 1, 1)
    other = np.where(np.isnan(own), np.nan, other)
    return own, other


def slot_leakage_db(single_source_decodes: np.ndarray, stems: np.ndarray) -> np.ndarray:
  """How much a stem alone leaks into the other sources' slots, per source, in dB (far below 0 = source-aware).

  Per-source codebooks make the slot vectors of different sources differ by construction, so the t-SNE picture
  is ~perfect even untrained; this asks the paper's claim of the audio instead. For stem i alone in, every slot j
  is decoded alone; leakage_i = 10 log10(mean_{j != i} E[slot j] / E[slot i]) with E the decoded energy. A model
  that routes a stem to its own slot has leakage << 0 dB; an untrained one, whose slots all decode alike, ~0 dB.

  Args:
    single_source_decodes: [S inputs, S slots, T, C], slot j decoded from stem i alone.
    stems: [S, T, C], the inputs (a stem below INACTIVE_RMS gives NaN: nothing to route).

  Returns:
    float64 [S].
  """
  sums = AwarenessSums(stems.shape[0])
  sums.add(single_source_decodes, None, stems)
  return sums.leakage_db()


def slot_correlations(estimates: np.ndarray, stems: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Which reference each slot's separation reproduces: (own [S], other [S]), squared normalized correlations.

  own_i = corr(slot i's estimate, reference i)^2; other_i = mean_{j != i} corr(slot i's estimate, reference j)^2,
  over the whole track (channels concatenated). A source-aware model has own >> other; a slot that outputs the
  mixture has own ~ other. NaN where a reference or an estimate is silent.
  """
  sums = AwarenessSums(stems.shape[0])
  sums.add(None, estimates, stems)
  return sums.correlations()
