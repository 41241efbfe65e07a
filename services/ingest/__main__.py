"""Entry point: ``python -m services.ingest``."""

import sys

from services.ingest.service import main

sys.exit(main())
