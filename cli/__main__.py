"""``python -m conveyor``."""

from __future__ import annotations

import sys

from conveyor.main import main

sys.exit(main())
