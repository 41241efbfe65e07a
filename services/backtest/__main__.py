"""Entry point: ``python -m services.backtest``."""

import sys

from services.backtest.service import main

sys.exit(main())
