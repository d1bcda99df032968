import sys

from metallm.cli import main

sys.exit(main())
