"""Deprecated: moved to :mod:`aimcjax.app.experiments.training` (this alias keeps the old path working)."""

from aimcjax._deprecated import alias

alias(__name__, "aimcjax.app.experiments.training")
