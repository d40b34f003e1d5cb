"""The application built on the library: the ``aimcjax`` command and what it runs.

:mod:`~aimcjax.app.cli` (the command, see docs/cli.md), :mod:`~aimcjax.app.experiments`
(paper reproductions, training runs, sweeps and their output folders),
:mod:`~aimcjax.app.specs` (the device and periphery spec grammar of the command line),
:mod:`~aimcjax.app.data` (embedded datasets and readers for MNIST/CIFAR files),
:mod:`~aimcjax.app.demo` and :mod:`~aimcjax.app.distributed_example` (runnable examples).

The application imports only public names of the library (``aimcjax.devices``, ``tile``,
``pulse``, ``periphery``, ``optim``, ``nn``, ``distributed``, ``fit``, ...). Importing this
package imports nothing else, so that
:mod:`~aimcjax.app.distributed_example` can initialize JAX's distributed runtime first.
"""
