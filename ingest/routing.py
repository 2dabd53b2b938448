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
import functools
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
from conveyor.pipeline.engine.blueprint import Blueprint, Run
from conveyor.pipeline.engine.dag import JobSpec, SourceObject
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
        if not self.concurrency_key:  # a plain field first: reading a private attribute costs a __getattr__
            return ""
        return self._key.render(event, pipeline=pipeline, job_type=self.type) if self._key else ""


class Pipeline(_Strict):
    name: str = Field(min_length=1)
    match: Match = Field(default_factory=Match)
    jobs: list[JobTemplate] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_dag(self) -> Pipeline:
        self.blueprint  # noqa: B018 - checks the DAG now, when the file loads, and keeps it
        return self

    @functools.cached_property
    def blueprint(self) -> Blueprint:
        """The jobs as the engine's blueprint, checked and ordered once (raises ``ValueError`` for a bad DAG).

        A cached property, not a private attribute: pydantic reads those through ``__getattr__``, a cost
        ingest paid for every job of every event."""
        specs = [
            JobSpec(name=j.name, job_type=j.type, payload={"params": j.params}, depends_on=j.depends_on,
                    priority=j.priority, max_retries=j.max_retries, timeout_ms=int(j.timeout_seconds * 1000),
                    concurrency_key=j.concurrency_key, concurrency_limit=j.concurrency_limit)
            for j in self.jobs
        ]  # fmt: skip
        try:
            return Blueprint.of(self.name, specs)
        except InvalidDag as exc:
            raise ValueError(f"pipeline {self.name!r}: {exc}") from None

    @functools.cached_property
    def _keyed_steps(self) -> tuple[JobTemplate, ...]:
        """The job templates in the blueprint's order when any job is keyed; () when none is."""
        by_name = {j.name: j for j in self.jobs}
        keyed = any(j.concurrency_key for j in self.jobs)
        return tuple(by_name[s.name] for s in self.blueprint.steps) if keyed else ()

    def run(self, event: UploadEvent, source: SourceObject, lineage_depth: int) -> Run:
        """This pipeline started on ``event``'s object: its concurrency keys rendered for the event."""
        keys = tuple(job.key_for(event, self.name) for job in self._keyed_steps)
        return Run(self.blueprint, source, {"lineage_depth": lineage_depth}, keys)


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

    def runs(self) -> list[Run]:
        """Every pipeline the event starts, as a run of its blueprint on the event's object.

        The jobs carry no idempotency keys: they are created only in the transaction that records the
        event as new, and the event's unique identity is what makes that happen once.
        """
        e = self.event
        source = SourceObject(e.bucket, e.key, e.version_id or None, self.event_id)
        return [pipeline.run(e, source, self.lineage_depth) for pipeline in self.pipelines]

    def specs(self) -> list[JobSpec]:
        """The runs' jobs as specs, named ``event/pipeline/job`` so one DAG could hold a whole batch."""
        return [spec for run in self.runs() for spec in run.specs(f"{self.event_id}/{run.blueprint.pipeline}")]


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
