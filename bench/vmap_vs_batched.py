"""Measure jax.vmap of a per-person fixed-step solve against one batched state (same scheme, same people)."""
import time, numpy as np, jax, jax.numpy as jnp, vpop
from vpop import _engine
m, p, _ = vpop.sample_population("DallaMan2007_normal", 1000, cv={"Vmx": 0.3, "kabs": 0.3})
prot = vpop.mixed_meals(1)
p32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), p)
y0 = m.basal_state(p32)
xs = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), m.protocol_inputs(prot, 1000))
names = ("glucose_plasma",)
pol = _engine.OpenLoop()
def batched():
    out = _engine._fast_solve(m, p32, y0, xs, 1.0, prot.n_intervals, names, 1, pol, jnp.zeros((1000, 0)), "bosh3")
    return out[0]["glucose_plasma"]
@jax.jit
def vmapped(p32, y0):
    def one(pi, yi):
        pi1 = jax.tree_util.tree_map(lambda a: a[None], pi); yi1 = jax.tree_util.tree_map(lambda a: a[None], yi)
        return _engine._fast_solve(m, pi1, yi1, xs, 1.0, prot.n_intervals, names, 1, pol, jnp.zeros((1, 0)), "bosh3")[0]["glucose_plasma"][0]
    return jax.vmap(one)(p32, y0)
for name, f in [("batched", batched), ("vmap", lambda: vmapped(p32, y0))]:
    np.asarray(f())
    ts = []
    for _ in range(5):
        t = time.perf_counter(); g = np.asarray(f()); ts.append(time.perf_counter() - t)
    print(name, "patient-days/s", round(1000 / np.median(ts)), g.shape)
print("max diff", float(np.max(np.abs(np.asarray(batched()) - np.asarray(vmapped(p32, y0))))))
