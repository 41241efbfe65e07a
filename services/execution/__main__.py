"""Entry point: ``python -m services.execution``."""

import sys

from services.execution.service import main

sys.exit(main())
