"""Entry point: ``python -m services.simulator``."""

import sys

from services.simulator.service import main

sys.exit(main())
