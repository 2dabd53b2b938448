"""Routing rules: which pipelines (small DAGs of jobs) an upload event starts. Pure: no I/O but reading the file.

The pipelines file is TOML::

    [[pipeline]]
    name = "csv"
    match = { buckets = ["uploads"], suffixes = [".csv"], max_size = 1_000_000_000 }

    [[pipeline.jobs]]
    name = "profile"
    type = "csv.profile"
    params = { max_invalid_rows = 20 }
    depends_on = []
    concurrency_key = "{bucket}/{prefix1}"   # optional: fair share and limits per key
    concurrency_limit = 4                    # optional: at most 4 of each key's jobs at once

An event may start several pipelines. Objects written by conveyor's own jobs carry the metadata
``conveyor-job-id``; no rule fires on them unless it sets ``match.include_pipeline_outputs``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from conveyor.ingest.errors import BadEvent, RoutingError
from conveyor.ingest.events import UploadEvent
from conveyor.ingest.keys import KeyTemplate
from conveyor.pipeline.engine.dag import JobSpec, SourceObject, topological_order
from conveyor.pipeline.engine.errors import InvalidDag
from conveyor.pipeline.lineage import JOB_ID_METADATA, LINEAGE_METADATA


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """What an event must look like to start the pipeline. Every given condition must hold."""

    buckets: list[str] = Field(default_factory=list)
    prefix: str = ""
    suffixes: list[str] = Field(default_factory=list)
    glob: str | None = None
    #: fnmatch patterns of event names, e.g. "s3:ObjectCreated:*".
    events: list[str] = Field(default_factory=lambda: ["s3:ObjectCreated:*"])
    min_size: int | None = Field(None, ge=0)
    max_size: int | None = Field(None, ge=0)
    #: fnmatch patterns of content types, e.g. "text/*".
    content_types: list[str] = Field(default_factory=list)
    include_pipeline_outputs: bool = False

    def accepts(self, event: UploadEvent) -> bool:
        key_lower = event.key.lower()
        return (
            (not self.buckets or event.bucket in self.buckets)
            and event.key.startswith(self.prefix)
            and (not self.suffixes or any(key_lower.endswith(s.lower()) for s in self.suffixes))
            and (self.glob is None or fnmatch.fnmatchcase(event.key, self.glob))
            and any(fnmatch.fnmatchcase(event.event_name, pattern) for pattern in self.events)
            and (self.min_size is None or (event.size or 0) >= self.min_size)
            and (self.max_size is None or (event.size or 0) <= self.max_size)
            and (not self.content_types or _content_type_matches(event.content_type, self.content_types))
            and (self.include_pipeline_outputs or event.metadata(JOB_ID_METADATA) is None)
        )


def _content_type_matches(content_type: str | None, patterns: list[str]) -> bool:
    bare = (content_type or "").split(";")[0].strip().lower()
    return any(fnmatch.fnmatchcase(bare, pattern.lower()) for pattern in patterns)


class JobTemplate(_Strict):
    """One job of a pipeline."""

    name: str = Field(min_length=1)
    type: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    priority: int = 0
    max_retries: int = Field(3, ge=0)
    timeout_seconds: float = Field(300.0, gt=0)
    #: A template of the job's concurrency key (see :mod:`conveyor.ingest.keys`); '' = the unkeyed pool.
    concurrency_key: str = ""
    #: At most this many jobs of each key the template makes RUNNING at once, across the cluster.
    concurrency_limit: int | None = Field(None, gt=0)

    #: The key template, parsed once when the file loads (None: the job is not keyed).
    _key: KeyTemplate | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _valid_key(self) -> JobTemplate:
        if self.concurrency_limit is not None and not self.concurrency_key:
            raise ValueError("concurrency_limit needs a concurrency_key")
        self._key = KeyTemplate.parse(self.concurrency_key) if self.concurrency_key else None
        return self

    def key_for(self, event: UploadEvent, pipeline: str) -> str:
        """The concurrency key of this job for ``event``."""
        return self._key.render(event, pipeline=pipeline, job_type=self.type) if self._key else ""


class Pipeline(_Strict):
    name: str = Field(min_length=1)
    match: Match = Field(default_factory=Match)
    jobs: list[JobTemplate] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_dag(self) -> Pipeline:
        try:
            topological_order([JobSpec(name=j.name, job_type=j.type, depends_on=j.depends_on) for j in self.jobs])
        except InvalidDag as exc:
            raise ValueError(f"pipeline {self.name!r}: {exc}") from None
        return self


class RoutingRules(_Strict):
    """The whole pipelines file."""

    pipeline: list[Pipeline] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RoutingRules:
        names = [p.name for p in self.pipeline]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"pipeline names must be unique: {duplicates}")
        return self

    def match(self, event: UploadEvent) -> list[Pipeline]:
        return [p for p in self.pipeline if p.match.accepts(event)]


@dataclass(frozen=True)
class RoutedEvent:
    """An event with the pipelines it starts, and (once recorded) its id in ``object_events``."""

    event: UploadEvent
    pipelines: list[Pipeline]
    lineage_depth: int = 0
    event_id: int | None = None

    @property
    def is_pipeline_output(self) -> bool:
        """Whether conveyor itself wrote the object (its metadata names the job)."""
        return self.event.metadata(JOB_ID_METADATA) is not None

    def recorded_as(self, event_id: int) -> RoutedEvent:
        return replace(self, event_id=event_id)

    def specs(self) -> list[JobSpec]:
        """Every job of every pipeline, named ``event/pipeline/job`` so one DAG can hold a whole batch.

        The jobs carry no idempotency keys: they are created only in the transaction that records the
        event as new, and the event's unique identity is what makes that happen once.
        """
        e = self.event
        source = SourceObject(e.bucket, e.key, e.version_id or None, self.event_id)
        specs = []
        for pipeline in self.pipelines:
            scope = f"{self.event_id}/{pipeline.name}"
            specs += [
                JobSpec(
                    name=f"{scope}/{job.name}",
                    step=job.name,
                    job_type=job.type,
                    payload={"params": job.params, "lineage_depth": self.lineage_depth},
                    depends_on=[f"{scope}/{parent}" for parent in job.depends_on],
                    priority=job.priority,
                    max_retries=job.max_retries,
                    timeout_ms=int(job.timeout_seconds * 1000),
                    pipeline=pipeline.name,
                    source=source,
                    concurrency_key=job.key_for(e, pipeline.name),
                    concurrency_limit=job.concurrency_limit,
                )
                for job in pipeline.jobs
            ]
        return specs


def route(event: UploadEvent, rules: RoutingRules, *, max_lineage_depth: int) -> RoutedEvent:
    """Match ``event`` against the rules; raise ``BadEvent('lineage_depth_exceeded')`` for a runaway chain."""
    depth = _lineage_depth(event)
    if depth > max_lineage_depth:
        raise BadEvent(
            "lineage_depth_exceeded",
            f"s3://{event.bucket}/{event.key} was written {depth} pipeline steps deep (limit {max_lineage_depth})",
        )
    return RoutedEvent(event=event, pipelines=rules.match(event), lineage_depth=depth)


def _lineage_depth(event: UploadEvent) -> int:
    value = event.metadata(LINEAGE_METADATA)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def load_rules(path: Path | None) -> RoutingRules:
    """Read and validate a pipelines file (the shipped default when ``path`` is None)."""
    try:
        text = path.read_text() if path else resources.files("conveyor.ingest").joinpath("pipelines.toml").read_text()
        return parse_rules(text)
    except OSError as exc:
        raise RoutingError(f"cannot read pipelines file {path}: {exc}") from None


def parse_rules(text: str) -> RoutingRules:
    try:
        return RoutingRules.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise RoutingError(f"pipelines file is not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise RoutingError("invalid pipelines file:\n" + "\n".join(problems)) from None


def describe(pipelines: Sequence[Pipeline]) -> list[str]:
    """Human-readable lines: each pipeline and its jobs with their dependencies."""
    lines = []
    for pipeline in pipelines:
        lines.append(f"pipeline {pipeline.name}:")
        for job in pipeline.jobs:
            after = f" (after {', '.join(job.depends_on)})" if job.depends_on else ""
            lines.append(f"  {job.name}: {job.type}{after}")
    return lines
