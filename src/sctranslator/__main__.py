"""``python -m sctranslator``."""

import sys

from sctranslator._cli import main

sys.exit(main())
