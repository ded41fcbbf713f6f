"""Engine: simulate every person of a population in one call.

Two modes, one physics (the model's ``vector_field``):

``"reference"`` (float64)
    Per person (``jax.vmap``) adaptive Dormand–Prince 8(7) (diffrax ``Dopri8``) with a PID step-size
    controller at tight tolerances (``rtol = atol = 1e-10`` by default). Each person has their own
    step sizes and their own solver result. Use it for checks against external references.

``"fast"`` (float32)
    The whole population as one **batched state** (every leaf has a leading person axis) advanced by
    a fixed-step explicit Runge–Kutta scheme (one step per minute by default) inside a
    :func:`jax.lax.scan`. The default scheme is Bogacki–Shampine 3 (``Bosh3``'s tableau) written out
    on the state pytree (``"bosh3_written"``, :func:`_bosh3_written_out`); a model that steps
    ``"bosh3"`` itself (``fast_interval_stepper``, e.g. the UVA/Padova T1D model) keeps its own
    stepper; other schemes step diffrax's solvers directly (:data:`FAST_SOLVERS`). No cross-person
    reductions exist, so a failing person cannot change anybody else; step sizes do not depend on
    the slowest person. Tested against the reference mode.

Inputs come per output interval (``model.protocol_inputs``): impulses (meals) are applied as exact
jumps at the interval's start node (``model.at_node``), rates (infusions, insulin delivery) are held
constant over the interval and passed to ``model.vector_field(t, y, params, u)``. The solver never
integrates across an input change. The state saved at a node is the state just *after* that node's
jumps (right-continuous).

Failures are reported per person in :attr:`SimulationResult.status` (see :class:`Status`) and never
stop or change the other people.

Sharding (``devices=``, or the :func:`use_devices` context): the person axis is split across devices
with ``jax.sharding`` — a 1-D :class:`jax.sharding.Mesh` with axis ``"people"`` and
``NamedSharding(mesh, P("people"))`` on every per-person leaf (parameters, state, per-person inputs,
controller state). The person count is padded to a multiple of the device count by repeating the last
person, and the padding is dropped from the results. The solve itself is the same compiled program;
XLA partitions it (there is no communication: people never interact). The exception is the fast
scheme ``"bosh3_written"`` (the default for most models): there every device runs the one-device
program on its own block of people (:func:`_fast_solve_per_device`, one compilation per device),
because the partitioned program rounds differently in the last bit (FMA contraction inside
differently fused kernels). With ``jax.distributed`` initialised, the mesh may span the devices of
several processes (multi-host): every process passes the whole population, computes the people on
its own devices, and the results are gathered so that every process returns the whole population. Every device's share is padded to a multiple of
:data:`LANE_MULTIPLE` people (fast mode pads the same way without sharding), so that a person's
result does not depend on the batch size or the device count: fast-mode results equal the unsharded
run bit for bit (tested on 8 host devices and on two processes); in reference mode any two sharded
runs agree bit for bit, and the unsharded run to the last bits.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from dataclasses import dataclass
from typing import Any, Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._protocols import Protocol


class Status(enum.IntEnum):
    """Per-person result codes of a simulation."""

    OK = 0  #: solved; all saved states finite; glucose ≥ 0
    SOLVER_FAILED = 1  #: the adaptive solver did not succeed (e.g. max_steps reached)
    NON_FINITE = 2  #: a saved state is NaN or infinite
    NEGATIVE_GLUCOSE = 3  #: plasma glucose went below zero


MODES = ("reference", "fast")

#: Fixed-step schemes available to the fast mode: diffrax solvers stepped directly, except
#: ``"bosh3_written"``, the same Bogacki–Shampine 3 written out on the state pytree
#: (:func:`_bosh3_written_out`), the default (:data:`DEFAULT_FAST_SOLVER`): for the Dalla Man model
#: on one CPU device 3.6-3.8x faster than ``"bosh3"`` with glucose saved, 1.6-2.4x with every state
#: saved (10 000 people-days, 1- and 5-min outputs, bench/RESULTS.md) and, sharded,
#: run as one one-device program per device so that it stays bit-identical to the unsharded run
#: (:func:`_fast_solve_per_device`). A model may step ``"bosh3"`` itself (``fast_interval_stepper``);
#: it then keeps ``"bosh3"`` by default (:func:`default_fast_solver`).
FAST_SOLVERS = {"tsit5": diffrax.Tsit5, "bosh3": diffrax.Bosh3, "bosh3_written": diffrax.Bosh3, "heun": diffrax.Heun,
                "midpoint": diffrax.Midpoint}


#: Fast scheme used when ``fast_solver`` is not given, for models that do not step ``"bosh3"``
#: themselves (those keep ``"bosh3"``, see :func:`default_fast_solver`).
DEFAULT_FAST_SOLVER = "bosh3_written"


def default_fast_solver(model, params, dt: float, substeps: int) -> str:
    """The fast scheme used when none is given: ``"bosh3"`` where the model steps it itself
    (``model.fast_interval_stepper`` returns a stepper for it, e.g. :class:`vpop.models.UvaPadova2008`),
    else :data:`DEFAULT_FAST_SOLVER`. Probed by tracing only (``jax.eval_shape``), nothing computed."""
    stepper = getattr(model, "fast_interval_stepper", None)
    if stepper is None:
        return DEFAULT_FAST_SOLVER
    found = []

    def probe(p):
        found.append(stepper("bosh3", p, dt, substeps) is not None)
        return jnp.zeros(())

    jax.eval_shape(probe, params)
    return "bosh3" if found[0] else DEFAULT_FAST_SOLVER


def _bosh3_written_out(model, params, dt: float, substeps: int):
    """``advance(y, u, t0)``: ``substeps`` Bogacki–Shampine 3 steps over one interval, written out on
    the state pytree with the model's own ``vector_field`` (diffrax ``Bosh3``'s tableau: stages at
    0, h/2, 3h/4, weights 2/9, 1/3, 4/9; no error estimate, no FSAL buffer, so three right-hand
    sides per step as in diffrax). The steps run in a ``fori_loop``: XLA:CPU otherwise fuses each
    state's update with every stage it depends on and recomputes shared stages (measured on the T1D
    model, 1.45x). Against stepping diffrax's ``Bosh3``: the same values to float32 rounding
    (7.6e-5 mg/dL on a day with meals), 3.7x faster for the Dalla Man model at 1-min steps
    (10 000 people, one CPU device, session 4), and independent of the batch size (0.0 between 8,
    16 and 56 people). It is the default fast scheme (:func:`default_fast_solver`) since sharded runs
    became bit-identical (below); ``fast_solver="bosh3"`` steps diffrax's ``Bosh3`` as before.

    Sharding: as a program partitioned by XLA over 8 (or 2) host devices it differed from the
    one-device run by 3.05e-5 mg/dL (first in ``insulin_action``, at the basal state). The cause is
    FMA contraction: XLA:CPU always lets LLVM fuse a multiply and an add of one fused kernel into an
    FMA (one rounding instead of two; ``vfmadd`` in the kernels' object code), and the partitioned
    program is fused differently from the one-device program (measured with Shardy, under
    ``jax.shard_map`` too, and with GSPMD under ``jax.shard_map``: the same 3.05e-5 mg/dL). With
    ``XLA_FLAGS=--xla_cpu_max_isa=AVX`` (no FMA) the partitioned run is bit-identical, with no cost
    seen on a loaded machine (0.61 against 0.65 s for 10 000 people-days), but that flag is
    process-wide and cannot be set per compilation (``compiler_options`` does not change the target
    ISA). So the
    sharded run of this scheme does not use XLA's partitioner: every device runs the one-device
    program on its block (:func:`_fast_solve_per_device`), bit-identical to the unsharded run
    (``tests/test_scale.py``, 8 host devices and two processes) at the price of one compilation per
    device."""
    h = dt / substeps
    tree_map = jax.tree_util.tree_map

    def advance(y, u, t0):
        f = lambda t, z: model.vector_field(t, z, params, u)

        def step(j, z):
            t = t0 + j * h
            k1 = f(t, z)
            k2 = f(t + 0.5 * h, tree_map(lambda a, b: a + (0.5 * h) * b, z, k1))
            k3 = f(t + 0.75 * h, tree_map(lambda a, b: a + (0.75 * h) * b, z, k2))
            return tree_map(lambda a, b1, b2, b3: a + h * ((2.0 / 9.0) * b1 + (1.0 / 3.0) * b2 + (4.0 / 9.0) * b3),
                            z, k1, k2, k3)

        return jax.lax.fori_loop(0, substeps, step, y)

    return advance

#: Number of times each compiled entry point has been traced (for no-recompilation tests).
TRACE_COUNTS: dict[str, int] = {"reference": 0, "fast": 0}


@dataclass(frozen=True)
class SimulationResult:
    """Trajectories of a population.

    Attributes:
        model: the model that was simulated.
        params: the parameters (leaves with a leading person axis).
        protocol: the protocol.
        time_min: output grid [min], shape ``(T,)``.
        states: saved states, ``name → array (n_people, T)`` in the units of ``model.state_units``.
        status: per-person :class:`Status` codes (int8 array), shape ``(n_people,)``.
        mode: ``"reference"`` or ``"fast"``.
    """

    model: Any
    params: Any
    protocol: Protocol
    time_min: np.ndarray
    states: dict[str, jax.Array]
    status: jax.Array
    mode: str

    @property
    def n_people(self) -> int:
        return int(jnp.shape(self.status)[0])

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of people whose solve succeeded."""
        return np.asarray(self.status) == Status.OK

    def select(self, idx) -> "SimulationResult":
        """The same result restricted to people ``idx`` (indices or a boolean mask)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        take = lambda a: a[idx]  # noqa: E731
        return SimulationResult(
            self.model, select_people(self.params, idx), self.protocol, self.time_min,
            {k: take(v) for k, v in self.states.items()}, jnp.asarray(self.status)[idx], self.mode,
        )

    def glucose_mg_per_dl(self) -> jax.Array:
        """Plasma glucose [mg/dL], shape ``(n_people, T)``."""
        return self.states["glucose_plasma"] / self.params.VG[:, None]

    def insulin_pmol_per_l(self) -> jax.Array:
        """Plasma insulin [pmol/L], shape ``(n_people, T)``."""
        return self.states["insulin_plasma"] / self.params.VI[:, None]

    def fluxes(self):
        """All algebraic quantities (Ra, EGP, …) along the trajectories (needs all states saved)."""
        missing = set(self.model.State._fields) - set(self.states)
        if missing:
            raise ValueError(f"fluxes need every state saved; not saved: {sorted(missing)}")
        y = self.model.State(**self.states)
        p = jax.tree_util.tree_map(lambda a: a[:, None], self.params)
        return self.model.fluxes(y, p)


def select_people(params, idx):
    """Parameters of people ``idx`` (indices or boolean mask) of a population pytree."""
    idx = np.asarray(idx)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    return jax.tree_util.tree_map(lambda a: a[idx], params)


def _as_population(params):
    """Give every leaf a leading person axis (a single person becomes a population of one)."""
    leaves = jax.tree_util.tree_leaves(params)
    ndims = {jnp.ndim(x) for x in leaves}
    if ndims == {0}:
        return jax.tree_util.tree_map(lambda x: jnp.reshape(x, (1,)), params)
    if ndims != {1}:
        raise ValueError(f"parameter leaves must all be scalars or all be 1-D (n_people,), got ndims {sorted(ndims)}")
    sizes = {jnp.shape(x)[0] for x in leaves}
    if len(sizes) != 1:
        raise ValueError(f"parameter leaves have different person counts {sorted(sizes)}")
    return params


def _broadcast_state(y0, n, dtype):
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(jnp.asarray(x, dtype), (n,)), y0)


def _select(y, names):
    return {k: getattr(y, k) for k in names}


def _health(y, finite, min_glucose):
    """Update per-person failure trackers from the full state (whatever is saved)."""
    for leaf in jax.tree_util.tree_leaves(y):
        finite = finite & jnp.isfinite(leaf)
    return finite, jnp.minimum(min_glucose, y.glucose_plasma)


def _term(model):
    # args = (params, interval inputs): inputs are held constant over each output interval.
    return diffrax.ODETerm(lambda t, y, args: model.vector_field(t, y, args[0], args[1]))


def _per_person_axes(inputs):
    return jax.tree_util.tree_map(lambda x: 0 if x.ndim == 2 else None, inputs)


# --------------------------------------------------------------------------- sharding

#: Name of the mesh axis that carries people.
PEOPLE_AXIS = "people"

_DEVICES: contextvars.ContextVar = contextvars.ContextVar("vpop_devices", default=None)


def people_mesh(devices="all") -> Mesh:
    """A 1-D :class:`jax.sharding.Mesh` with axis ``"people"``.

    ``devices``: ``"all"`` (every device JAX sees, across processes when ``jax.distributed`` is
    initialised), an int ``k`` (the first ``k`` of them), a sequence of devices, or a ready
    1-D mesh whose axis is named ``"people"``.
    """
    if isinstance(devices, Mesh):
        if devices.axis_names != (PEOPLE_AXIS,):
            raise ValueError(f"devices: a mesh must be 1-D with axis {PEOPLE_AXIS!r}, got axes {devices.axis_names}")
        return devices
    available = jax.devices()
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices={devices!r}; allowed: 'all', an int, a sequence of devices or a Mesh")
        devs = available
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= int(devices) <= len(available):
            raise ValueError(f"devices={devices}: must be between 1 and the {len(available)} available devices")
        devs = available[: int(devices)]
    else:
        devs = list(devices)
        if not devs:
            raise ValueError("devices: empty sequence")
    return Mesh(np.array(devs), (PEOPLE_AXIS,))


@contextlib.contextmanager
def use_devices(devices="all"):
    """Shard every simulation run inside the ``with`` block across ``devices``.

    For entry points that do not take a ``devices`` argument themselves (e.g.
    :func:`vpop.simulate_t1d`); an explicit ``devices=`` argument wins. ``devices`` as in
    :func:`people_mesh`; ``None`` turns sharding off inside the block.

    Example:
        >>> import vpop
        >>> model, params, _ = vpop.sample_population("DallaMan2007_normal", 3, cv={"Vmx": 0.3}, seed=0)
        >>> with vpop.use_devices("all") as mesh:
        ...     res = vpop.simulate(model, params, vpop.ogtt(save_every_min=10.0), mode="fast")
        >>> mesh.axis_names, res.n_people
        (('people',), 3)
    """
    mesh = None if devices is None else people_mesh(devices)
    token = _DEVICES.set(mesh)
    try:
        yield mesh
    finally:
        _DEVICES.reset(token)


def _global_array(a: np.ndarray, sharding):
    """A (possibly multi-process) global array from the full host array ``a``, present on every process."""
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


#: People per device are padded to a multiple of this. XLA:CPU computes the last people of a batch
#: (the part that does not fill a SIMD vector) in scalar code that can round differently from the
#: vector code in the last bit (measured: float32 ``jnp.log``, and the fast-mode step of the Dalla
#: Man model, for batch sizes 2, 9 and 17). With every device's share a multiple of 8, a person's
#: result does not depend on the batch size, the chunking or the number of devices.
LANE_MULTIPLE = 8


def _padded_size(n: int, n_devices: int = 1) -> int:
    block = LANE_MULTIPLE * n_devices
    return -(-n // block) * block


def _pad_people(tree, n_pad):
    """Pad every leaf's leading person axis to ``n_pad`` by repeating the last person (traceable)."""
    def one(x):
        k = n_pad - jnp.shape(x)[0]
        return x if k == 0 else jnp.concatenate([x, jnp.repeat(x[-1:], k, axis=0)])

    return jax.tree_util.tree_map(one, tree)


def _shard_people(tree, mesh, n_pad):
    """Pad every leaf's leading person axis to ``n_pad`` (repeating the last person) and shard it."""
    sharding = NamedSharding(mesh, PartitionSpec(PEOPLE_AXIS))

    def one(x):
        a = np.asarray(x)
        if a.shape[0] < n_pad:
            a = np.concatenate([a, np.repeat(a[-1:], n_pad - a.shape[0], axis=0)])
        return _global_array(a, sharding)

    return jax.tree_util.tree_map(one, tree)


def _replicate(tree, mesh):
    """Every array leaf of ``tree`` replicated on every device of ``mesh`` (other leaves untouched)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    is_array = lambda x: isinstance(x, (jax.Array, np.ndarray))  # noqa: E731
    return jax.tree_util.tree_map(lambda x: _global_array(np.asarray(x), sharding) if is_array(x) else x, tree)


def _unpad_people(tree, n):
    """Gather outputs onto every process if they span several (multi-host) and drop padded people."""
    leaves = jax.tree_util.tree_leaves(tree)
    if any(isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and not x.is_fully_addressable
           for x in leaves):
        from jax.experimental import multihost_utils

        tree = jax.tree_util.tree_map(jnp.asarray, multihost_utils.process_allgather(tree, tiled=True))
    if leaves and jnp.shape(leaves[0])[0] != n:
        tree = jax.tree_util.tree_map(lambda x: x[:n], tree)
    return tree


class OpenLoop(eqx.Module):
    """Policy of an open-loop protocol: the interval's inputs are the precomputed ones."""

    def init(self, params, y0):
        return ()

    def __call__(self, pstate, y, x, p, k, dt):
        return pstate, x, {}


@eqx.filter_jit
def _reference_solve(model, params, y0, xs, dt, n_int, names, rtol, atol, max_steps, policy, pstate0):
    """Per person (vmap): scan over output intervals; adaptive Dopri8 inside each interval."""
    TRACE_COUNTS["reference"] += 1
    term = _term(model)
    solver = diffrax.Dopri8()
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    dtype = y0.glucose_plasma.dtype

    def one(p, y_init, person_xs, ps0):
        def body(carry, inp):
            y, ps, ok, finite, gmin = carry
            k, x = inp
            ps, u, record = policy(ps, y, x, p, k, dt)
            y = model.at_node(y, u, dt)
            finite, gmin = _health(y, finite, gmin)
            t0 = k * dt
            sol = diffrax.diffeqsolve(
                term, solver, t0, t0 + dt, dt, y, args=(p, u),
                saveat=diffrax.SaveAt(t1=True), stepsize_controller=controller,
                max_steps=max_steps, throw=False,
            )
            y1 = jax.tree_util.tree_map(lambda a: a[-1], sol.ys)
            ok = ok & (sol.result == diffrax.RESULTS.successful)
            return (y1, ps, ok, finite, gmin), (_select(y, names), record)

        ks = jnp.arange(n_int, dtype=dtype)
        init = (y_init, ps0, jnp.array(True), jnp.array(True), jnp.asarray(jnp.inf, dtype))
        (y_end, _, ok, finite, gmin), (saved, records) = jax.lax.scan(body, init, (ks, person_xs))
        finite, gmin = _health(y_end, finite, gmin)
        last = _select(y_end, names)
        saved = {k: jnp.concatenate([saved[k], last[k][None]]) for k in names}
        return saved, records, ok, finite, gmin

    return jax.vmap(one, in_axes=(0, 0, _per_person_axes(xs), 0))(params, y0, xs, pstate0)


@eqx.filter_jit
def _fast_solve(model, params, y0, xs, dt, n_int, names, substeps, policy, pstate0, solver_name):
    """Batched state: scan over output intervals; fixed-step Runge–Kutta inside each interval."""
    TRACE_COUNTS["fast"] += 1
    term = _term(model)
    # a model may advance a whole interval itself (``model.fast_interval_stepper``; None: diffrax)
    stepper = getattr(model, "fast_interval_stepper", None)
    advance = None if stepper is None else stepper(solver_name, params, dt, substeps)
    generic = _bosh3_written_out(model, params, dt, substeps) if solver_name == "bosh3_written" else None
    solver = FAST_SOLVERS[solver_name]()
    h = dt / substeps
    dtype = y0.glucose_plasma.dtype
    # the policy is written per person; run it over the person axis with vmap
    batched_policy = jax.vmap(policy, in_axes=(0, 0, 0, 0, None, None))

    def interval(carry, inp):
        y, ps, finite, gmin = carry
        k, x = inp
        ps, u, record = batched_policy(ps, y, x, params, k, dt)
        y = model.at_node(y, u, dt)
        finite, gmin = _health(y, finite, gmin)
        t0 = k * dt
        args = (params, u)

        def sub(carry, j):
            y, state = carry
            t = t0 + j * h
            y1, _, _, state, _ = solver.step(term, t, t + h, y, args, state, made_jump=False)
            return (y1, state), None

        if advance is not None:
            return (advance(y, u), ps, finite, gmin), (_select(y, names), record)
        if generic is not None:
            return (generic(y, u, t0), ps, finite, gmin), (_select(y, names), record)
        # init after the node's jump: the FSAL derivative is recomputed from the jumped state
        state0 = solver.init(term, t0, t0 + h, y, args)
        (y1, _), _ = jax.lax.scan(sub, (y, state0), jnp.arange(substeps, dtype=dtype), unroll=True)
        return (y1, ps, finite, gmin), (_select(y, names), record)

    ks = jnp.arange(n_int, dtype=dtype)
    n = y0.glucose_plasma.shape[0]
    # scan over time with every input leaf per person: (n, T) → (T, n); shared (T,) → (T, n)
    xs_t = jax.tree_util.tree_map(lambda x: x.T if x.ndim == 2 else jnp.broadcast_to(x[:, None], (x.shape[0], n)), xs)
    init = (y0, pstate0, jnp.ones(n, bool), jnp.full(n, jnp.inf, dtype))
    (y_end, _, finite, gmin), (saved, records) = jax.lax.scan(interval, init, (ks, xs_t))
    finite, gmin = _health(y_end, finite, gmin)
    last = _select(y_end, names)
    # saved leaves are (T-1, n) → (n, T); records (T-1, n, ...) → (n, T-1, ...)
    saved = {k: jnp.concatenate([saved[k], last[k][None]]).T for k in names}
    records = jax.tree_util.tree_map(lambda r: jnp.moveaxis(r, 0, 1), records)
    return saved, records, finite, gmin


def _fast_solve_per_device(mesh, n_pad, model, params, y0, xs, fast_args, policy, pstate0, solver_name):
    """Sharded fast mode without XLA's partitioner: every device of ``mesh`` that this process
    addresses runs the one-device program (:func:`_fast_solve`, compiled for that device) on its own
    block of people, and the blocks are assembled into arrays sharded over ``"people"``.

    Used for ``"bosh3_written"`` (see :func:`_bosh3_written_out`): XLA fuses a program partitioned
    over several devices differently from the one-device program, and XLA:CPU lets LLVM contract a
    multiply and an add of one fused kernel into an FMA (one rounding instead of two), so the
    partitioned program rounded some states differently in the last bit (3e-5 mg/dL of glucose over
    a day). Each block is a multiple of :data:`LANE_MULTIPLE` people and the one-device program does
    not depend on the batch size, so the result equals the unsharded run bit for bit. The cost: one
    compilation per device (cached like every jit); the blocks run concurrently (asynchronous
    dispatch). The inputs are already placed by :func:`_shard_people` and :func:`_replicate`."""
    sharding = NamedSharding(mesh, PartitionSpec(PEOPLE_AXIS))

    def on(device, tree):
        """Each array leaf's shard on ``device``: the device's block of people, or the whole of a
        replicated array."""
        def one(x):
            if not isinstance(x, jax.Array):
                return x
            return next(s.data for s in x.addressable_shards if s.device == device)

        return jax.tree_util.tree_map(one, tree)

    blocks = [_fast_solve(*on(device, (model, params, y0, xs)), *fast_args, *on(device, (policy, pstate0)), solver_name)
              for device in sorted(sharding.addressable_devices, key=lambda d: d.id)]

    def assemble(*leaves):
        return jax.make_array_from_single_device_arrays((n_pad,) + leaves[0].shape[1:], sharding, list(leaves))

    return jax.tree_util.tree_map(assemble, *blocks)


def solve(model, params, y0, xs, *, dt, n_intervals, mode, saved_states=None, policy=None, pstate0=None,
          rtol=1e-10, atol=1e-10, max_steps=4096, substeps=None, fast_solver=None, devices=None):
    """Low-level entry point shared by :func:`simulate` and the closed-loop T1D simulator.

    ``xs`` are per-interval inputs (leaves ``(T,)`` or ``(n, T)``); ``policy`` (an equinox Module,
    written per person) maps ``(pstate, y, x, p, k, dt)`` to ``(pstate, u, record)``: the model
    inputs ``u`` of interval ``k`` and a pytree ``record`` saved per interval (e.g. CGM readings and
    insulin delivered). ``devices`` shards the person axis (see :func:`people_mesh`; default: the
    :func:`use_devices` context, else no sharding). ``fast_solver=None``: :func:`default_fast_solver`.
    Returns ``(saved_states, records, status)``.
    """
    names = tuple(model.State._fields) if saved_states is None else tuple(saved_states)
    if fast_solver is not None and fast_solver not in FAST_SOLVERS:
        raise ValueError(f"fast_solver={fast_solver!r}; allowed: {sorted(FAST_SOLVERS)}")
    policy = OpenLoop() if policy is None else policy
    n = int(jnp.shape(params.BW)[0])
    if pstate0 is None:
        pstate0 = jax.vmap(policy.init)(params, y0)
    mesh = _DEVICES.get() if devices is None else people_mesh(devices)
    per_person = jax.tree_util.tree_map(lambda x: jnp.ndim(x) == 2, xs)
    n_pad = n
    if mesh is not None:
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((params, y0, xs, pstate0))):
            raise ValueError("devices= (or vpop.use_devices) cannot shard inside jax.jit/grad/vmap: call it outside, "
                             "or pass inputs that are already sharded")
        n_pad = _padded_size(n, mesh.size)
        params, y0, pstate0 = _shard_people((params, y0, pstate0), mesh, n_pad)
        xs = jax.tree_util.tree_map(
            lambda x, pp: _shard_people(x, mesh, n_pad) if pp else _replicate(x, mesh), xs, per_person)
        model, policy = _replicate((model, policy), mesh)
    elif mode == "fast":
        # Unsharded fast mode pads too (cheap: 1 → 8 people costs ~10%), so its results equal the
        # sharded run's bit for bit. The unsharded reference mode does not (8 copies of one person
        # cost 4×); its people in the vector tail may differ from a sharded run in the last bits.
        n_pad = _padded_size(n)
        params, y0, pstate0 = _pad_people((params, y0, pstate0), n_pad)
        xs = jax.tree_util.tree_map(lambda x, pp: _pad_people(x, n_pad) if pp else x, xs, per_person)
    if mode == "fast" and substeps is None:
        substeps = max(1, int(np.ceil(dt)))
    fast_args = (float(dt), int(n_intervals), names, int(substeps or 1))
    if mode == "fast" and fast_solver is None:
        fast_solver = default_fast_solver(model, params, float(dt), int(substeps))
    if mode == "fast" and mesh is not None and fast_solver == "bosh3_written":
        saved, records, finite, gmin = _fast_solve_per_device(
            mesh, n_pad, model, params, y0, xs, fast_args, policy, pstate0, fast_solver)
        solver_ok = None
    elif mode == "reference":
        saved, records, solver_ok, finite, gmin = _reference_solve(
            model, params, y0, xs, float(dt), int(n_intervals), names, rtol, atol, max_steps, policy, pstate0)
    else:
        saved, records, finite, gmin = _fast_solve(model, params, y0, xs, *fast_args, policy, pstate0, fast_solver)
        solver_ok = None
    if n_pad != n or mesh is not None:
        saved, records, finite, gmin, solver_ok = _unpad_people((saved, records, finite, gmin, solver_ok), n)
    if solver_ok is None:
        solver_ok = jnp.ones(n, dtype=bool)
    # Status comes from the full state at every output node, whatever is saved. Computed with jnp so
    # that the whole simulation can be differentiated (jax.grad) and jitted end to end.
    status = jnp.full(n, Status.OK, dtype=jnp.int8)
    status = jnp.where(finite, status, jnp.int8(Status.NON_FINITE))
    status = jnp.where(finite & (gmin < 0), jnp.int8(Status.NEGATIVE_GLUCOSE), status)
    status = jnp.where(solver_ok, status, jnp.int8(Status.SOLVER_FAILED))
    return saved, records, status


def simulate(
    model,
    params,
    protocol: Protocol,
    *,
    y0=None,
    mode: str = "reference",
    saved_states: Sequence[str] | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    max_steps: int = 4096,
    substeps: int | None = None,
    fast_solver: str | None = None,
    devices=None,
) -> SimulationResult:
    """Simulate every person of ``params`` through ``protocol``.

    Args:
        model: a model instance, e.g. :class:`vpop.models.DallaMan2007`.
        params: the model's parameter module; leaves scalar (one person) or shape ``(n_people,)``.
        protocol: a :class:`vpop.Protocol` (meals, OGTT, fasting, …).
        y0: initial state: the model's ``State``, or a dict ``{state name: value}`` replacing entries
            of the basal state (e.g. the third value returned by :func:`vpop.sample_population`);
            default: the basal state of each person.
        mode: ``"reference"`` (float64, adaptive, per person) or ``"fast"`` (float32, fixed step,
            batched state).
        saved_states: names of the states to keep (default: all). Saving only
            ``("glucose_plasma", "insulin_plasma")`` keeps memory small for large cohorts.
        rtol, atol: tolerances of the reference mode.
        max_steps: per output interval, reference mode.
        substeps: fixed steps per output interval in fast mode (default: one step per minute,
            at least 1).
        fast_solver: fixed-step scheme of the fast mode. Default (``None``):
            ``"bosh3_written"``, Bogacki–Shampine 3 written out on the state (the same values as
            ``"bosh3"`` to float32 rounding, 1.6–3.8× faster for the Dalla Man model), or ``"bosh3"``
            for a model that steps it itself (:func:`default_fast_solver`). ``"bosh3"`` steps
            diffrax's ``Bosh3`` (on the T1D
            day 0.06 mg/dL from the reference at 2.3× the speed of Tsit5); also ``"tsit5"``,
            ``"heun"`` or ``"midpoint"`` (2nd order: ~0.4 mg/dL, ~2× faster again).
        devices: shard the person axis across devices with ``jax.sharding``: ``"all"``, an int
            ``k`` (the first ``k`` devices), a sequence of devices or a 1-D mesh with axis
            ``"people"`` (:func:`people_mesh`); default: the :func:`use_devices` context, else one
            device. The results are the same, bit for bit, as the unsharded run's.

    Returns:
        A :class:`SimulationResult` with per-person status codes.

    Example:
        >>> import vpop
        >>> model, params, _ = vpop.parameters_from_set("DallaMan2007_normal")
        >>> res = vpop.simulate(model, params, vpop.ogtt())
        >>> round(float(res.glucose_mg_per_dl()[0, 0]), 1)
        91.8
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; allowed: {MODES}")
    for attr in ("n_intervals", "save_every_min", "time_min"):
        if not hasattr(protocol, attr):
            raise TypeError(f"protocol must be a vpop.Protocol (or have .{attr}), got {type(protocol).__name__}")
    names = tuple(model.State._fields) if saved_states is None else tuple(saved_states)
    unknown = set(names) - set(model.State._fields)
    if unknown:
        raise ValueError(f"saved_states: unknown state(s) {sorted(unknown)}; allowed: {list(model.State._fields)}")
    if mode == "reference" and not jax.config.jax_enable_x64:
        raise RuntimeError("reference mode needs float64: jax.config.update('jax_enable_x64', True)")
    dtype = jnp.float64 if mode == "reference" else jnp.float32

    params = _as_population(params)
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)
    n = int(jnp.shape(params.BW)[0])
    if y0 is None or isinstance(y0, dict):
        y0 = model.initial_state(params, y0)
    y0 = _broadcast_state(y0, n, dtype)
    inputs = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), model.protocol_inputs(protocol, n))
    for leaf in jax.tree_util.tree_leaves(inputs):
        if leaf.shape not in ((protocol.n_intervals,), (n, protocol.n_intervals)):
            raise ValueError(f"protocol inputs have shape {leaf.shape}; expected ({protocol.n_intervals},) or ({n}, {protocol.n_intervals})")
    dt = float(protocol.save_every_min)
    n_int = protocol.n_intervals

    if mode == "fast" and substeps is None:
        substeps = max(1, int(np.ceil(dt)))
    saved, _, status = solve(model, params, y0, inputs, dt=dt, n_intervals=n_int, mode=mode, saved_states=names,
                             rtol=rtol, atol=atol, max_steps=max_steps, substeps=substeps, fast_solver=fast_solver,
                             devices=devices)
    return SimulationResult(model, params, protocol, protocol.time_min, saved, status, mode)
