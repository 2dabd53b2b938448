"""How background work lives and ends: stop-aware waits, periodic loops, supervised tasks and processes."""

from __future__ import annotations
