"""The conveyor exception tree.

Every error conveyor raises derives from :class:`ConveyorError`. It lives in ``db`` because ``db`` is the
lowest layer: ``pipeline`` and ``ingest`` extend the tree in their own ``errors`` modules.

    ConveyorError
    ├── ConfigurationError          a setting is missing or invalid
    ├── ServiceUnavailable          a backing service (PostgreSQL, Redis, Kafka, S3) cannot serve us now
    │   ├── DatabaseUnavailable
    │   └── TransactionConflict     PostgreSQL rolled back a deadlock's victim: the same work succeeds again
    ├── DatabaseError               PostgreSQL answered with an error we did not expect
    │   └── UniqueViolation
    └── MigrationError              the migrations on disk and in the database disagree

Third-party errors are translated where they enter (see :func:`db.connection.translate_errors`).
The class docstring is the default message, so ``raise DatabaseUnavailable`` needs no text.
"""

from __future__ import annotations

from typing import ClassVar


class ConveyorError(Exception):
    """A conveyor error."""

    #: Whether a background loop should back off and try again (True) or give up (False).
    retriable: ClassVar[bool] = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigurationError(ConveyorError):
    """The configuration is invalid."""


class ServiceUnavailable(ConveyorError):
    """A backing service cannot be reached."""

    retriable = True


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL cannot be reached."""


class TransactionConflict(ServiceUnavailable):
    """PostgreSQL rolled the transaction back to break a deadlock or a serialization conflict."""


class DatabaseError(ConveyorError):
    """PostgreSQL rejected a statement."""


class UniqueViolation(DatabaseError):
    """A row with the same unique key already exists."""

    def __init__(self, message: str | None = None, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class MigrationError(ConveyorError):
    """The schema migrations cannot be applied."""
