"""Models. `getattr(models, config.model.name)` picks one."""
from srcvq_jax.models.vqvae import VQVAE, ModelOutput  # noqa: F401
