"""Deprecated: moved to :mod:`aimcjax.app.cli` (this alias keeps the old path working)."""

if __name__ == "__main__":  # `python -m aimcjax.cli`
    import sys

    from aimcjax.app.cli import main

    sys.exit(main())
else:
    from aimcjax._deprecated import alias

    alias(__name__, "aimcjax.app.cli")
