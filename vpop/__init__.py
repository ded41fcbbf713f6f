"""vpop: virtual-population simulation of human glucose–insulin physiology in JAX."""
import jax as _jax

# Reference checks run in float64; the fast mode casts to float32 explicitly.
_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
