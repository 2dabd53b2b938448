"""Marks on the objects conveyor writes, so routing can tell them from users' uploads (loop safety)."""

from __future__ import annotations

#: User metadata (and tag) naming the job that wrote the object.
JOB_ID_METADATA = "conveyor-job-id"
#: How many pipeline steps deep the object was written; routing dead-letters chains past a limit.
LINEAGE_METADATA = "conveyor-lineage-depth"
