"""``python -m metallm``: the ``metallm`` command."""

import sys

from metallm.cli import main

sys.exit(main())
