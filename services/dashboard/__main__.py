"""Entry point: ``python -m services.dashboard``."""

import sys

from services.dashboard.service import main

sys.exit(main())
