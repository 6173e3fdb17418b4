"""Benchmarks of srcvq_jax: scripts that print one JSON line per measurement (see benchmarks/run_all.sh)."""
