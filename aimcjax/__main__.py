"""``python -m aimcjax``: the ``aimcjax`` command."""

import sys

from aimcjax.cli import main

sys.exit(main())
