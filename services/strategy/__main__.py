"""Entry point: ``python -m services.strategy``."""

import sys

from services.strategy.service import main

sys.exit(main())
