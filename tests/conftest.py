"""Shared test setup: float64 for reference checks (vpop enables it at import), small N everywhere."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402

import vpop  # noqa: E402,F401  (enables float64)

assert jax.config.jax_enable_x64
