"""srcvq_jax: source-aware discrete representations of music (VQ-VAE with per-source Gumbel codebooks).

Importing the package has no side effects and pulls in nothing heavy; import the submodules you need.
"""
__version__ = '0.1.0'
