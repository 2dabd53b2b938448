"""The pipeline: the job engine, the worker runtime, maintenance, S3 access and the handlers.

Rooms, from the bottom: ``lifecycle`` (waiting, periodic loops, supervised tasks and processes), ``engine``
(the one door to jobs), ``storage`` (S3), ``handlers``, ``maintenance`` (rescue, retention, leadership),
``worker`` (the process that claims and runs jobs).
"""

from __future__ import annotations
