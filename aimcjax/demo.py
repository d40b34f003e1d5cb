"""Deprecated: moved to :mod:`aimcjax.app.demo` (this alias keeps the old path working)."""

if __name__ == "__main__":  # `python -m aimcjax.demo`
    import sys

    from aimcjax.app.demo import main

    sys.exit(main())
else:
    from aimcjax._deprecated import alias

    alias(__name__, "aimcjax.app.demo")
