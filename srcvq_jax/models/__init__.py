"""Models and their construction: `create` (with params), `abstract` (shapes only, e.g. restore targets),
`split_params` and `receptive_margin`, which is all that training, inference and export need to know of a model.
config.model.name picks the model class."""
from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx

from srcvq_jax import errors
from srcvq_jax.models import layers
from srcvq_jax.models import vqvae
from srcvq_jax.models.vqvae import VQVAE, ModelOutput  # noqa: F401

_MODELS = {'VQVAE': VQVAE}


def create(config, seed: int = 0, forms: layers.LayerForms | None = None) -> nnx.Module:
  """The model named by config.model.name, with parameters from `seed`.

  forms: how its layers compute (layers.LayerForms, e.g. a benchmark's candidate); default: config.model.conv_impl's
  forms on this platform. The parameters are the same whatever the forms.
  """
  name = config.model.name
  if name not in _MODELS:
    raise errors.ConfigError(f'model.name={name!r}: expected one of {tuple(_MODELS)}')
  return _MODELS[name](config, rngs=nnx.Rngs(params=seed), forms=forms)


def split_params(model: nnx.Module) -> tuple[nnx.GraphDef, dict]:
  """(graphdef, params as a pure dict): the form the train state, checkpoints and exports hold."""
  graphdef, params = nnx.split(model, nnx.Param)
  return graphdef, params.to_pure_dict()


def abstract(config, sharding: jax.sharding.Sharding | None = None) -> tuple[nnx.GraphDef, Any]:
  """(graphdef, params as ShapeDtypeStructs, with `sharding` when given) of config's model; nothing allocated."""
  return abstract_of(lambda: create(config), sharding)


def abstract_of(create_model: Callable[[], nnx.Module],
                sharding: jax.sharding.Sharding | None = None) -> tuple[nnx.GraphDef, Any]:
  """abstract() of any model: (graphdef, params as ShapeDtypeStructs) of what create_model() would build."""
  graphdef, shapes = split_params(nnx.eval_shape(create_model))
  return graphdef, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def receptive_margin(config) -> int:
  """Samples of context on each side that make a windowed output sample exact (a multiple of the stride)."""
  return vqvae.receptive_margin(config.model)
