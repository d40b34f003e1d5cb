"""Deprecated: moved to :mod:`aimcjax.app.distributed_example` (this alias keeps the old path working)."""

if __name__ == "__main__":  # `python -m aimcjax.distributed.example`
    import sys

    from aimcjax.app.distributed_example import main

    sys.exit(main())
else:
    from aimcjax._deprecated import alias

    alias(__name__, "aimcjax.app.distributed_example")
