"""The pipeline layer's part of the exception tree (rooted at :class:`db.errors.ConveyorError`)."""

from __future__ import annotations

import uuid

from conveyor.db.errors import ConveyorError


class JobNotFound(ConveyorError):
    """No job has that id."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class InvalidDag(ConveyorError):
    """The jobs and dependencies given do not form a valid DAG."""


class DependencyCycle(InvalidDag):
    """The dependencies form a cycle."""


class UnknownParent(InvalidDag):
    """A job depends on a job that does not exist."""


class InvalidLimit(ConveyorError):
    """A flow limit PostgreSQL would not hold (a cap or rate not above zero, a burst without a rate...)."""


class JobConflict(ConveyorError):
    """The job is not in a state that allows this change."""


class StorageError(ConveyorError):
    """The object store refused or failed a request."""

    retriable = True


class ObjectMissing(StorageError):
    """The object no longer exists (deleted, or never written)."""

    retriable = False
