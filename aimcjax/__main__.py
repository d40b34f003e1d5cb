"""``python -m aimcjax``: the ``aimcjax`` command."""

import sys

from aimcjax.app.cli import main

sys.exit(main())
