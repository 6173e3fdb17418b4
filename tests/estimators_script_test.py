"""scripts/estimators.py: the estimators from decoded selections of slots."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'scripts'))
import estimators  # noqa: E402  (scripts/estimators.py)


def _decodes(sources: np.ndarray, decode) -> np.ndarray:
  return np.stack([decode(sources, mask) for mask in estimators.selection_masks(sources.shape[0])])


def test_every_estimator_is_the_source_when_decoding_is_additive():
  sources = np.random.default_rng(0).normal(size=(4, 50, 2)).astype(np.float32)
  additive = lambda s, mask: np.einsum('s,stc->tc', mask, s)
  for name, estimate in estimators.estimates(_decodes(sources, additive), 4).items():
    np.testing.assert_allclose(estimate, sources, rtol=1e-5, atol=1e-5, err_msg=name)


def test_estimators_differ_where_decoding_is_not_additive_and_consistent_sums_to_the_mixture():
  sources = np.random.default_rng(1).normal(size=(4, 50, 2)).astype(np.float32)
  # A decoder that leaks 30% of slot 3 into slot 0's output when slot 0 is decoded without slot 3.
  def leaky(s, mask):
    out = np.einsum('s,stc->tc', mask, s)
    return out + 0.3 * s[3] * mask[0] * (1 - mask[3])
  decoded = _decodes(sources, leaky)
  found = estimators.estimates(decoded, 4)
  np.testing.assert_allclose(found['slot'][0], sources[0] + 0.3 * sources[3], rtol=1e-5, atol=1e-5)
  # Neither decode(all) nor decode(all but 0) leaks (slot 3 is in both); decode(all but 3) leaks 0.3 of source 3.
  np.testing.assert_allclose(found['difference'][0], sources[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(found['difference'][3], 0.7 * sources[3], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(found['consistent'].sum(axis=0), decoded[4], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(found['mean'], 0.5 * (found['slot'] + found['difference']), rtol=1e-6)
  assert [estimators.decodes_per_window(n, 4) for n in ('slot', 'difference', 'consistent', 'mean')] == [4, 5, 5, 9]

