"""Config checks and the JSON round trip of saved configs (old workdirs included)."""
import json
import os

import pytest

from srcvq_jax import config_lib
from srcvq_jax import errors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_saved_config_without_new_fields_reads_as_what_it_was_trained_with():
  with open(os.path.join(REPO, 'tests', 'fixtures', 'ci_workdir_v1', 'config.json'), encoding='utf-8') as f:
    saved = json.load(f)
  assert 'residual_units' not in saved['model'] and 'kind' not in saved['quantizer']
  config = config_lib.config_from_dict(saved)
  for (group, field), value in config_lib.ADDED_FIELDS.items():
    assert config[group][field] == value, (group, field)
  assert isinstance(config.model.strides, tuple) and isinstance(config.quantizer.fsq_levels, tuple)
  config_lib.validate(config)


def test_round_trip_keeps_nested_tuples(ci_config):
  ci_config.loss.stft_resolutions = ((128, 32), (512, 128))
  again = config_lib.config_from_dict(json.loads(ci_config.to_json()))
  assert again.loss.stft_resolutions == ((128, 32), (512, 128))


@pytest.mark.parametrize('field,value,message', [
    ('quantizer.kind', 'rvq', "quantizer.kind='rvq'"),
    ('quantizer.fsq_levels', (1, 5), 'each >= 2'),
    ('model.residual_kernel', 4, 'must be odd'),
    ('loss.stft_resolutions', ((128, 256),), 'need (n_fft, hop)'),
    ('optim.schedule', 'linear', "optim.schedule='linear'"),
    ('train.sdr_seconds', 0.0, 'train.sdr_seconds=0.0'),
    ('data.speed_semitones', 5, 'data.speed_semitones=5'),
    ('data.speed_semitones', -1, 'data.speed_semitones=-1'),
    ('model.decoder_residual_units', (1, 1, 1), 'one count >= 0 per level (2)'),
    ('model.decoder_residual_units', (1, -1), 'one count >= 0 per level (2)'),
    ('model.spectral_input_fft', 1, 'model.spectral_input_fft=1'),
    ('data.select_one_prob', 1.5, 'data.select_one_prob=1.5'),
    ('data.select_one_weights', (1.0, 2.0, 3.0, 4.0, 5.0), 'one positive weight per source'),
    ('data.select_one_weights', (1.0, 0.0, 1.0, 1.0), 'one positive weight per source'),
])
def test_validate_rejects_bad_new_fields(ci_config, field, value, message):
  section, name = field.split('.')
  ci_config[section][name] = value
  if field == 'quantizer.fsq_levels':
    ci_config.quantizer.kind = 'fsq'
  with pytest.raises(errors.ConfigError, match=message.replace('(', r'\(').replace(')', r'\)')):
    config_lib.validate(ci_config)


def test_fsq_needs_consistent_code_dim_and_size(ci_config):
  ci_config.quantizer.kind = 'fsq'
  ci_config.quantizer.fsq_levels = (5, 3)
  with pytest.raises(errors.ConfigError, match='prod'):
    config_lib.validate(ci_config)
  ci_config.quantizer.code_dim, ci_config.quantizer.codebook_size = 2, 15
  config_lib.validate(ci_config)


def test_every_quality_config_validates():
  import glob  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top
  paths = sorted(glob.glob(os.path.join(REPO, 'configs', 'quality', '*.py')))
  assert len(paths) >= 5
  for path in paths:
    name = os.path.splitext(os.path.basename(path))[0]
    if name == '__init__':
      continue
    config = importlib.import_module(f'configs.quality.{name}').get_config()
    config.data.data_dir = 'unused'
    config_lib.validate(config, num_devices=1)


@pytest.mark.parametrize('field,value,message', [
    ('data.batch_size', 12, 'not divisible by the 8 devices'),
    ('data.segment_length', 4001, 'not a multiple of the total stride'),
    ('loss.weights.selective_l1', -1.0, 'must be >= 0'),
    ('quantizer.tau_end', 2.0, 'tau_end'),
    ('model.decoder_input', 'product', 'decoder_input'),
    ('train.microbatches', -1, 'train.microbatches=-1 must be >= 0'),
    ('model.conv_impl', 'cudnn', "model.conv_impl='cudnn': expected one of"),
    ('optim.ema_decay', 1.0, r'optim.ema_decay=1.0 must be in \[0, 1\)'),
])
def test_validate_rejects_bad_values(ci_config, field, value, message):
  section, *rest = field.split('.')
  node = ci_config[section]
  for key in rest[:-1]:
    node = node[key]
  node[rest[-1]] = value
  with pytest.raises(errors.ConfigError, match=message):
    config_lib.validate(ci_config, num_devices=8)


def test_all_configs_validate():
  from configs import ablation_no_complement, ablation_no_stft, base, ci, small  # pylint: disable=g-import-not-at-top
  for module in (base, small, ci, ablation_no_stft, ablation_no_complement):
    config = module.get_config()
    config.data.data_dir = 'unused'
    config_lib.validate(config, num_devices=1)
