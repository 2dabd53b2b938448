"""``make bench``: every benchmark, written to bench/RESULTS.md (``python -m bench``)."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from pathlib import Path

from bench import api as api_bench
from bench import delivery as delivery_bench
from bench import e2e as e2e_bench
from bench import engine as engine_bench
from bench import flow as flow_bench
from bench import ingest as ingest_bench
from bench import peer_queues as peers
from bench import report
from bench import worker as worker_bench
from bench.database import fresh_database
from conveyor import runtime
from conveyor import settings as settings_module
from conveyor.commands.run import DEFAULT_AUTOSCALE

RESULTS = Path(__file__).parent / "RESULTS.md"
PEER_JOBS = 5_000


def _rates(figures: list[engine_bench.Figure]) -> str:
    return _rates_of([f.rate for f in figures])


def _rates_of(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


def _enqueue_split(figures: engine_bench.EngineFigures) -> str:
    """Where a bulk-enqueued job's time went beside the COPY's, in microseconds (medians of the rounds)."""
    rounds = list(zip(figures.enqueue, figures.enqueue_building, strict=True))
    total = statistics.median(f.seconds / f.jobs * 1e6 for f in figures.enqueue)
    specs = statistics.median(building / f.jobs * 1e6 for f, building in rounds)
    create = statistics.median((f.seconds - building) / f.jobs * 1e6 for f, building in rounds)
    copy = statistics.median(f.seconds / f.jobs * 1e6 for f in figures.bare_copy)
    return (
        f"Per job: {total:.1f} µs, of which building the spec (the caller's part) {specs:.1f} µs and `create_dag` "
        f"{create:.1f} µs, beside the COPY's {copy:.1f} µs; at 70% of the COPY's rate a job may take {copy / 0.7:.1f} "
        f"µs. `create_dag` alone ran at {report.share(copy / create, 0.7)} of the COPY's rate."
    )


async def engine_section(settings: settings_module.Settings) -> report.Section:
    figures = await engine_bench.run(settings.postgres)
    peer_dsn = await _peer_database(settings)
    peer_figures = peers.run_all(peer_dsn, settings.redis, PEER_JOBS)
    section = report.Section("Engine: no-op jobs through create -> claim -> complete", "make bench (bench/engine.py)")
    durability = figures.durability
    section.text(
        f"PostgreSQL {durability['server_version']} with fsync={durability['fsync']}, "
        f"synchronous_commit={durability['synchronous_commit']} (default durability).",
    )
    drains = figures.drain
    rows = []
    for fig in drains:
        if fig.name == "conveyor":
            bare = next(b for b in drains if b.name == "bare" and (b.claimers, b.batch) == (fig.claimers, fig.batch))
            rows.append(
                [
                    f"{fig.claimers}",
                    f"{fig.batch}",
                    f"{fig.rate:,.0f}",
                    f"{bare.rate:,.0f}",
                    f"{fig.rate / bare.rate:.0%}",
                ]
            )
    section.table(["claimers", "claim batch", "conveyor jobs/s", "bare asyncpg loop jobs/s", "conveyor / bare"], rows)
    enqueue, copy = figures.enqueue, figures.bare_copy
    enqueue_rate, copy_rate = statistics.median(f.rate for f in enqueue), statistics.median(f.rate for f in copy)
    ratio = enqueue_rate / copy_rate
    section.text(
        f"Enqueue in bulk (`create_dag` of {enqueue[0].batch:,} jobs a transaction, the specs built in the timed loop "
        f"as a caller builds them), {enqueue[0].jobs:,} jobs a round: **{enqueue_rate:,.0f} jobs/s** (median; rounds "
        f"{_rates(enqueue)}), beside a bare asyncpg binary COPY of the same rows (built before timing) in rounds "
        f"taken in turn with them, {copy_rate:,.0f} jobs/s ({_rates(copy)}): **{report.share(ratio, 0.7)}** of it "
        f"(target ≥ 70%: {'met' if ratio >= 0.7 else 'missed'}). {_enqueue_split(figures)}"
    )
    best_peer = max(peer_figures, key=lambda p: p.rate)
    section.table(
        ["peer (same machine, same run)", "variant", "jobs", "jobs/s"],
        [[p.peer, p.variant, f"{p.jobs:,}", f"{p.rate:,.0f}"] for p in peer_figures],
    )
    best_conveyor = max((f for f in drains if f.name == "conveyor"), key=lambda f: f.rate)
    section.figures["best_peer"] = best_peer.rate
    section.text(
        f"Best conveyor drain: {best_conveyor.rate:,.0f} jobs/s ({best_conveyor.claimers} claimers, batch "
        f"{best_conveyor.batch}) = {best_conveyor.rate / best_peer.rate:.1f}x the best peer variant "
        f"({best_peer.peer} {best_peer.variant}, {best_peer.rate:,.0f} jobs/s)."
    )
    return section


async def ingest_section(settings: settings_module.Settings) -> report.Section:
    figures = await ingest_bench.run(settings)
    section = report.Section("Ingest: events to committed jobs (one ingestor)", "make bench (bench/ingest.py)")
    section.text(
        f"{figures.events:,} real MinIO notifications (one uploaded object's event, copied with distinct keys and "
        f"sequencers) pre-filled on a {figures.partitions}-partition topic; each starts a 2-job pipeline. The bare "
        f"insert and ingest took {ingest_bench.ROUNDS} turns, each on a fresh database (ingest as a new consumer "
        f"group): bare {_rates_of(figures.bare_rates)} events/s, ingest {_rates_of(figures.ingest_rates)} events/s; "
        "the table takes the medians."
    )
    ratio = figures.ingest_rate / figures.bare_rate
    section.table(
        ["what", "events/s", "of the bare insert (target ≥ 70%)"],
        [["raw aiokafka read of the same topic", f"{figures.raw_rate:,.0f}", "-"],
         [f"bare asyncpg loop inserting the same rows (event, upload, 2 jobs, edge), {figures.batch} events a "
          "transaction (the limit)", f"{figures.bare_rate:,.0f}", "-"],
         ["conveyor ingest: read, parse, route, record, create jobs, commit offsets",
          f"{figures.ingest_rate:,.0f}", f"**{report.share(ratio, 0.7)}**: {'met' if ratio >= 0.7 else 'missed'}"]],
    )  # fmt: skip
    section.text(
        f"Light load ({len(figures.latencies_ms)} events, one every 50 ms), Kafka timestamp to jobs committed: "
        f"p50 {figures.percentile(50):.1f} ms, p95 {figures.percentile(95):.1f} ms, "
        f"p99 {figures.percentile(99):.1f} ms."
    )
    return section


async def worker_section(settings: settings_module.Settings, peer_best: float | None) -> report.Section:
    figures = await worker_bench.run(settings)
    section = report.Section("Workers: a 2 GiB checksum, and no-op jobs through real processes",
                             "make bench (bench/worker.py)")  # fmt: skip
    mb = 1 << 20
    section.table(
        ["what", "figure"],
        [["checksum (SHA-256 + MD5) of a 2 GiB object, worker process", f"{figures.checksum_rate / mb:,.0f} MiB/s"],
         ["`curl` from MinIO piped to `sha256sum`, same object", f"{figures.sha256sum_rate / mb:,.0f} MiB/s"],
         ["worker / sha256sum", f"{figures.checksum_rate / figures.sha256sum_rate:.2f}x"],
         ["peak RSS of that worker process", f"{figures.peak_rss_bytes / mb:,.0f} MiB"]],
    )  # fmt: skip
    rows, engine_best = [], figures.engine_drain
    for processes, rate in figures.noop_rates.items():
        of_engine = rate / engine_best
        ratio = f"{of_engine:.0%}"
        if processes == 1:
            ratio = f"**{report.share(of_engine, 0.7)}** (target ≥ 70%: {'met' if of_engine >= 0.7 else 'missed'})"
        peer = f"{rate / peer_best:.1f}x" if peer_best else "n/a"
        if processes == max(figures.noop_rates) and peer_best:
            peer = f"**{peer}** (target ≥ 5x: {'met' if rate / peer_best >= 5 else 'missed'})"
        rows.append([str(processes), "16", f"{rate:,.0f}", ratio, peer])
    section.text(
        "No-op jobs through real `conveyor worker` processes, from the first job started to the last one finished "
        "(database timestamps), beside the engine's best in-process drain "
        f"({worker_bench.DRAIN_CLAIMERS} claimers, batch {worker_bench.DRAIN_BATCH}, "
        f"{worker_bench.NOOP_JOBS:,} jobs) in the same database, and the best peer's real workers (the engine "
        f"section, same run). One process and the engine's drain took {worker_bench.ONE_PROCESS_ROUNDS} turns: "
        f"one process {_rates_of(figures.noop_rounds[1])} jobs/s, the engine {_rates_of(figures.engine_drains)} "
        f"jobs/s; then each larger count took {worker_bench.MORE_PROCESS_ROUNDS} turns ("
        + "; ".join(f"{n} processes {_rates_of(r)}" for n, r in figures.noop_rounds.items() if n > 1)
        + f" jobs/s). The table takes the medians (the engine: {engine_best:,.0f} jobs/s)."
    )
    section.table(["worker processes", "concurrency each", "no-op jobs/s", "of the engine's best drain",
                   "of the best peer"], rows)  # fmt: skip
    return section


async def flow_section(settings: settings_module.Settings) -> report.Section:
    figures = await flow_bench.run(settings)
    section = report.Section("Flow control: fair share, caps and rate limits", "make bench (bench/flow.py)")
    t = figures.throughput
    section.text(
        f"Engine drain (4 in-process claimers, batch 100) of 20,000 no-op jobs spread over {flow_bench.KEYS} "
        "concurrency keys, each capped (at 10,000: the bookkeeping runs, the cap never binds) and weighted 1-3; "
        "the same keys with no limit (fair share alone); and the same jobs with no key and no limit (off). "
        f"{flow_bench.ROUNDS} interleaved rounds each."
    )

    def row(name: str, rates: list[float], ratio: str) -> list[str]:
        return [name, ", ".join(f"{r:,.0f}" for r in rates), f"{statistics.median(rates):,.0f}", ratio]

    section.table(
        ["run", "jobs/s per round", "median", "of off (target ≥ 80%)"],
        [row("keys and fair share", t.keyed, f"**{t.ratio(t.keyed):.0%}**"),
         row("keys, fair share and a cap on every key", t.capped, f"**{t.ratio(t.capped):.0%}**"),
         row("off: no keys, no limits", t.off, "-")],
    )  # fmt: skip
    fair, unfair = figures.fair, figures.unfair
    met = "met" if fair.percentile(99) <= 2 else "**missed**"
    section.text(
        "Fairness: two worker processes of 16 slots, saturated by tenant A's 20,000 jobs of 10 ms; tenant B then "
        "enqueues 100. B's wait from ready to RUNNING (database timestamps):"
    )
    section.table(
        ["run", "B p50 s", "B p99 s", "B max s", "target"],
        [["fair share (A and B keyed)", f"{fair.percentile(50):.3f}", f"{fair.percentile(99):.3f}",
          f"{max(fair.seconds):.3f}", f"p99 ≤ 2 s: {met}"],
         ["without (nothing keyed: one FIFO)", f"{unfair.percentile(50):.3f}", f"{unfair.percentile(99):.3f}",
          f"{max(unfair.seconds):.3f}", "-"]],
    )  # fmt: skip
    r = figures.rate
    within = "met" if abs(r.rate / r.limit - 1) <= 0.10 else "**missed**"
    section.text(
        f"Rate limit: `bench.noop` limited to {r.limit:g} starts/s (burst {r.burst}), three worker processes of "
        f"16 slots, a backlog larger than the minute can take: **{r.rate:.1f} starts/s** over {r.seconds:.0f} s "
        f"({r.started:,} starts; ×{r.rate / r.limit:.3f} of the limit; ±10%: {within}); the busiest single "
        f"second started {r.busiest_second} (a full bucket's burst plus that second's refill bounds it at "
        f"{r.burst + r.limit:.0f})."
    )
    return section


def _cpu_cells(run: api_bench.Run) -> list[str]:
    return [f"{run.cpu_ms(role):.2f}" for role in (api_bench.SERVER, api_bench.POSTGRES)]


async def api_section(settings: settings_module.Settings) -> report.Section:
    figures = await api_bench.run(settings)
    section = report.Section("HTTP API: the seed verbs beside a bare uvicorn endpoint", "make bench (bench/api.py)")
    section.text(
        f"`conveyor api` (one uvicorn process) and a bare ASGI app under the same uvicorn doing one statement per "
        f"request on an asyncpg pool (bench/bare_api.py: no framework, validation or authentication), each on a "
        f"fresh database; {api_bench.REQUESTS:,} requests (or acquire-then-complete pairs) per run over kept-alive "
        f"HTTP/1.1 connections, after a warm-up. Both servers run at once; each row took {api_bench.ROUNDS} runs on "
        "each, conveyor's then the bare endpoint's in turn, and shows each one's round of median rate (the rates "
        "of every round under the table). Both make two statements per acquire-complete pair: the claim, then "
        "the completion (conveyor's guarded by the status and the worker, and releasing dependents; the bare "
        "endpoint's one UPDATE). conveyor runs with its default settings: bearer tokens checked, bodies validated, "
        "request metrics. A well-formed `POST /api/jobs`, acquire or completion is answered by the fast path "
        "(api/fast_path.py: the route's own model and code without FastAPI's per-request machinery)."
    )
    rows, rounds, cpu_rows = [], [], []
    for what in ("create", "acquire+complete"):
        verb = "POST /api/jobs" if what == "create" else "acquire, then complete"
        by_server = figures.runs[(what, "conveyor")], figures.runs[(what, "bare")]
        for mine_rounds, bare_rounds in zip(*by_server, strict=True):
            mine, bare = api_bench.median_run(mine_rounds), api_bench.median_run(bare_rounds)
            cpu_rows.append([verb, str(mine.clients), *_cpu_cells(mine), *_cpu_cells(bare)])
            rounds.append(f"{verb}, {mine.clients} client(s): conveyor {_rates_of([r.rate for r in mine_rounds])}; "
                          f"bare {_rates_of([r.rate for r in bare_rounds])}.")  # fmt: skip
            ratio = mine.rate / bare.rate
            rows.append([verb, str(mine.clients), f"{mine.rate:,.0f}", f"{api_bench.median_ms(mine):.2f}",
                         f"{mine.percentile(99):.2f}", f"{bare.rate:,.0f}",
                         f"**{report.share(ratio, 0.7)}** ({'met' if ratio >= 0.7 else 'missed'})"])  # fmt: skip
    section.table(["verb", "clients", "conveyor /s", "p50 ms", "p99 ms", "bare /s", "of bare (target ≥ 70%)"], rows)
    section.text("Each round's rate (/s): " + " ".join(rounds))
    section.text(
        "Where the CPU went, in milliseconds per request (per pair for acquire-complete), in the rounds of median "
        "rate above: the server's process, and PostgreSQL (every backend). Where conveyor's rate falls short of the "
        "bare endpoint's, these show which process spent the difference."
    )
    section.table(["verb", "clients", "conveyor server", "conveyor PostgreSQL", "bare server", "bare PostgreSQL"],
                  cpu_rows)  # fmt: skip
    return section


def e2e_section(settings: settings_module.Settings) -> report.Section:
    figures = e2e_bench.run(settings)
    section = report.Section("End to end: MinIO upload to processed results", "make bench (bench/e2e.py)")
    running, complete = e2e_bench.percentiles(figures.to_running_ms), e2e_bench.percentiles(figures.to_complete_ms)
    section.figures["to_running_p50"], section.figures["to_running_p99"] = running[0], running[2]
    section.text(
        f"`conveyor run` (ingest, workers of concurrency 8 autoscaled {DEFAULT_AUTOSCALE} as by default, API; every "
        "loop at its default interval) on the local stack, MinIO in the default mode (no queue dir, asynchronous "
        f"events). Light load: {len(figures.to_running_ms)} small CSV "
        "uploads, one every 100 ms; each starts 3 jobs (checksum → inspect, csv.profile). Times from the PUT "
        "returning, read from the jobs' database timestamps."
    )
    recorded = e2e_bench.percentiles(figures.to_recorded_ms)
    inside = e2e_bench.percentiles(figures.recorded_to_running_ms)
    met = "met" if running[0] <= 25 and running[2] <= 100 else "**missed**"
    section.table(
        ["light load", "p50 ms", "p95 ms", "p99 ms", "target"],
        [["PUT → first job RUNNING", *(f"{v:.0f}" for v in running), f"p50 ≤ 25, p99 ≤ 100: {met}"],
         ["PUT → pipeline COMPLETED", *(f"{v:.0f}" for v in complete), "-"],
         ["of which PUT → event recorded by ingest (MinIO → Kafka → ingest)", *(f"{v:.0f}" for v in recorded), "-"],
         ["of which event recorded → first job RUNNING (conveyor)", *(f"{v:.0f}" for v in inside), "-"]],
    )  # fmt: skip
    _steady(section, figures)
    for image in e2e_bench.plot(figures):
        section.text(f"![{image}]({image})")
    return section


def _steady(section: report.Section, figures: e2e_bench.E2EFigures) -> None:
    held = figures.held
    section.text(
        f"Steady state: uploads paced at a fixed rate from {e2e_bench.THREADS} threads for "
        f"{e2e_bench.HELD_SECONDS} s; held when the uploads kept pace and the backlog (uploaded, pipeline not "
        "completed) stayed within two seconds of uploads over the last 20 s; the rate bisected between nothing and "
        f"the floor, from half of it, in {e2e_bench.TRIALS} runs, after {_warmup(figures)}. The I/O floor beside it: "
        "the same "
        f"{e2e_bench.THREADS} threads making each upload's S3 requests alone (PUT, HEAD, "
        f"{e2e_bench.GETS_PER_UPLOAD} GETs), no conveyor: **{figures.floor_rate:,.0f} uploads/s**."
    )
    section.table(
        ["asked uploads/s", "uploaded", "completed", "backlog, last 20 s max", "held"],
        [[f"{t.rate:,.0f}", f"{sum(t.uploads):,}", f"{sum(t.completed):,}", f"{max(t.backlog[-20:]):,}",
          "yes" if t.held else ("no" if t.kept_pace else "no (uploads fell behind)")] for t in figures.trials],
    )  # fmt: skip
    if held is None:
        section.text("**No rate tried was held.**")
        return
    ratio = held.rate / figures.floor_rate
    section.text(
        f"Highest rate held for {e2e_bench.HELD_SECONDS} s: **{held.rate:,.0f} uploads/s** ({held.rate * 3:,.0f} "
        f"jobs/s) = **{report.share(ratio, 0.5)}** of the I/O floor "
        f"(target ≥ 50%: {'met' if ratio >= 0.5 else 'missed'})."
    )
    _cpu_per_upload(section, figures, held)


def _warmup(figures: e2e_bench.E2EFigures) -> str:
    """The warm-up run, with what Kafka spent per upload in it beside the held run (the JVM's warm-up)."""
    warmup, held = figures.warmup, figures.held
    text = (f"a warm-up not counted ({len(warmup.uploads)} s at {warmup.rate:,.0f}/s, {e2e_bench.WARMUP_SHARE:.0%} "
            "of the floor: a deployment's Kafka has run for days; Kafka spent "
            f"{_kafka_ms_per_upload(warmup):.2f} ms of CPU per upload in it")  # fmt: skip
    return text + (f", {_kafka_ms_per_upload(held):.2f} in the held run below)" if held else ")")


def _kafka_ms_per_upload(run: e2e_bench.Steady) -> float:
    return run.cpu_seconds.get(e2e_bench.STACK_ROLES["kafka"], 0.0) / max(1, sum(run.uploads)) * 1000


def _cpu_per_upload(section: report.Section, figures: e2e_bench.E2EFigures, held: e2e_bench.Steady) -> None:
    """Where one upload's CPU went, held rate beside the floor: what the pipeline adds to the requests."""
    uploads = sum(held.uploads)
    pipeline = {role: seconds / uploads * 1000 for role, seconds in held.cpu_seconds.items()}
    floor = {role: seconds * 1000 for role, seconds in figures.floor_cpu.items()}
    roles = sorted(pipeline.keys() | floor.keys(), key=lambda role: -max(pipeline.get(role, 0), floor.get(role, 0)))
    rows = [[role, f"{floor.get(role, 0):.2f}", f"{pipeline.get(role, 0):.2f}"] for role in roles]
    rows.append(["**all**", f"**{sum(floor.values()):.2f}**", f"**{sum(pipeline.values()):.2f}**"])
    busy = sum(held.cpu_seconds.values()) / held.span_seconds
    section.text(
        f"Where the CPU of one upload went (milliseconds of CPU per upload, from /proc): the floor's run, and the "
        f"{held.rate:,.0f}/s run from its first upload until its backlog drained. The floor kept "
        f"{sum(figures.floor_cpu.values()) * figures.floor_rate:.2f} of the {os.cpu_count()} cores busy, the "
        f"pipeline's run {busy:.2f}: where both are near the whole machine, the rate held is about the floor's "
        "times the ratio of the two totals."
    )
    section.table(["process", "floor ms/upload", f"pipeline at {held.rate:,.0f}/s ms/upload"], rows)


def delivery_section(settings: settings_module.Settings, default_running: tuple[float, float] | None) -> report.Section:
    section = report.Section("Delivery and completeness: modes, a Kafka outage, backfills, sweeps",
                             "make bench (bench/delivery.py)")  # fmt: skip
    _put_latency(section, delivery_bench.put_latency(settings))
    _queued_mode(section, delivery_bench.queued_light_load(settings), default_running)
    _outage(section, delivery_bench.kafka_outage(settings))
    _backfill(section, delivery_bench.backfill(settings))
    _sweep(section, delivery_bench.sweep(settings))
    return section


def _put_latency(section: report.Section, figures: dict[str, delivery_bench.PutLatency]) -> None:
    rows = []
    for mode, f in figures.items():
        up, down = statistics.median(f.up_ms), statistics.median(f.down_ms)
        rows.append([mode, f"{up:,.1f}", f"{max(f.up_ms):,.1f}", f"{down:,.1f}", f"{max(f.down_ms):,.1f}",
                     f"×{down / up:,.1f}"])  # fmt: skip
    section.text("PUT latency of a small object, Kafka up (20 PUTs) and SIGKILLed (10 PUTs), in the default mode "
                 "(the stack's MinIO) and the queued mode (a second MinIO with a queue dir and "
                 "`MINIO_API_SYNC_EVENTS=on`), side by side in one run.")  # fmt: skip
    section.table(["mode", "up p50 ms", "up max ms", "Kafka down p50 ms", "Kafka down max ms", "down / up"], rows)


def _queued_mode(section: report.Section, queued: list[float], default_running: tuple[float, float] | None) -> None:
    q = e2e_bench.percentiles(queued)
    rows = [["queued (queue dir, sync events)", f"{q[0]:,.0f}", f"{q[1]:,.0f}", f"{q[2]:,.0f}"]]
    if default_running is not None:
        rows.insert(0, ["default (this run's e2e section)", f"{default_running[0]:,.0f}", "-",
                        f"{default_running[1]:,.0f}"])  # fmt: skip
    section.text(f"PUT → first job RUNNING at light load through `conveyor run` ({len(queued)} uploads in the "
                 "queued mode, against the second MinIO): MinIO sends its queue on a fixed 3 s tick.")  # fmt: skip
    section.table(["MinIO mode", "p50 ms", "p95 ms", "p99 ms"], rows)


def _outage(section: report.Section, o: delivery_bench.Outage) -> None:
    bound = 30 + 300  # the default grace window plus the default sweep interval
    once = o.pipelines_per_upload.get(1, 0)
    section.text(
        f"Kafka SIGKILLed for {o.kafka_down_seconds:.0f} s while {o.uploads:,} uploads arrived at a steady rate "
        f"(`conveyor run`, default mode and reconciler settings). Uploads whose pipelines ran exactly once: "
        f"**{once:,} of {o.uploads:,}** (per upload: {dict(o.pipelines_per_upload)}). The last pipeline completed "
        f"**{o.settled_after_seconds:,.0f} s** after Kafka was back, against a bound of {bound} s (one grace "
        f"window plus one sweep interval): ×{o.settled_after_seconds / bound:.2f} of it. Sweeps found "
        f"**{o.found_missing:,}** objects missing; MinIO reported **{o.minio_failed:,.0f}** failed sends "
        f"({o.early_sweeps} early sweeps)."
    )


def _backfill(section: report.Section, b: delivery_bench.Backfill) -> None:
    seconds = b.first_seconds + b.resumed_seconds
    section.text(
        f"`conveyor backfill` of {b.objects:,} existing CSVs (2 jobs each), SIGKILLed after listing "
        f"{b.killed_at_listed:,} and started again: {b.objects_started:,} objects started, objects by job count "
        f"{dict(b.jobs_per_object)}; **{b.objects / seconds:,.0f} objects/s** over both runs ({seconds:.1f} s, the "
        f"lease wait between them excluded). The same S3 requests alone (list, HEAD each, 8 at a time): "
        f"{b.bare_seconds:.1f} s, so the backfill ran at ×{b.bare_seconds / seconds:.2f} of that floor. A second "
        f"backfill started {b.second_run_started} objects in {b.second_run_seconds:.1f} s."
    )


def _sweep(section: report.Section, s: delivery_bench.Sweep) -> None:
    section.text(
        f"A reconcile sweep over **{s.objects:,}** recorded objects with nothing missing: **{s.sweep_seconds:.1f} s** "
        f"({s.objects / s.sweep_seconds:,.0f} objects/s, {s.pages} pages, {s.list_requests} LIST requests, "
        f"{s.missing} missing), costing **{s.transactions:,} PostgreSQL transactions** "
        f"({s.transactions / max(s.pages, 1):.1f} per page: one lookup of the page and one write of it with its "
        "cursor; the pool runs no reset statement on release). "
        f"Listing the same objects alone took {s.bare_list_seconds:.1f} s: the sweep ran at "
        f"×{s.bare_list_seconds / s.sweep_seconds:.2f} of it. Recording them first (a backfill whose rules start "
        f"nothing: list, HEAD each, record) took {s.record_seconds:.1f} s."
    )


async def _peer_database(settings: settings_module.Settings) -> str:
    """An empty database for Procrastinate, which applies its own schema."""
    return (await fresh_database(settings.postgres, "procrastinate_bench", migrated=False)).dsn()


async def main(selected: list[str]) -> None:
    settings = settings_module.load()
    runtime.tune_garbage_collector()  # as every conveyor process does (the in-process engine and ingestor run here)
    sections = []
    peer_best: float | None = None
    if not selected or "engine" in selected:
        section = await engine_section(settings)
        peer_best = section.figures.get("best_peer")
        sections.append(section)
    if not selected or "ingest" in selected:
        sections.append(await ingest_section(settings))
    if not selected or "worker" in selected:
        sections.append(await worker_section(settings, peer_best))
    if not selected or "flow" in selected:
        sections.append(await flow_section(settings))
    if not selected or "api" in selected:
        sections.append(await api_section(settings))
    default_running: tuple[float, float] | None = None
    if not selected or "e2e" in selected:
        e2e = await asyncio.to_thread(e2e_section, settings)
        default_running = e2e.figures["to_running_p50"], e2e.figures["to_running_p99"]
        sections.append(e2e)
    if not selected or "delivery" in selected:
        sections.append(await asyncio.to_thread(delivery_section, settings, default_running))
    for section in sections:
        print(section.render())
    if not selected:
        report.write(str(RESULTS), sections, [])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
