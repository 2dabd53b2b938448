"""The worker runtime: a process that claims jobs, runs their handlers and writes their outcomes.

Also the completion writer, the autoscaler that supervises worker processes, and the worker's metrics.
"""

from __future__ import annotations
