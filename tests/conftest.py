"""Shared test setup: float64 for reference checks (vpop enables it at import), small N everywhere."""

import jax

import vpop  # noqa: F401  (enables float64)

assert jax.config.jax_enable_x64
