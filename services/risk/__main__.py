"""Entry point: ``python -m services.risk``."""

import sys

from services.risk.service import main

sys.exit(main())
