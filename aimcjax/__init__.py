"""aimcjax: training on analog in-memory computing (AIMC) hardware, simulated in JAX.

See docs/architecture.md for how it is built; the modules are
``devices`` (response functions), ``tile`` (crossbar state), ``pulse`` (the update kernel),
``periphery`` (analog MVMs), ``optim`` (optax transformations), ``nn`` (flax layers),
``distributed`` (communication-censored SGD).
"""

__version__ = "0.1.0"
