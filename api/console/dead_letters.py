"""Dead letters: why each message could not become jobs, its bytes and headers, and replay of one or a
selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import Response

from conveyor.api.console.auth import Action, Refused, operator, viewer
from conveyor.api.console.rendering import render
from conveyor.api.console.session import Session
from conveyor.api.context import context_of
from conveyor.ingest.deadletters import Replayer

router = APIRouter(prefix="/ui")
PAGE_SIZE = 50
#: A selection replays at most this many letters in one request.
MAX_SELECTION = 200
MESSAGE_SHOWN = 16_384


@dataclass(frozen=True)
class Replay:
    """What replaying one letter did."""

    letter_id: int
    replayed: bool
    jobs_created: int
    error: str | None


def text_of(data: bytes | None) -> str:
    """A message's bytes as text (undecodable bytes shown as U+FFFD), cut at MESSAGE_SHOWN characters."""
    if data is None:
        return "-"
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= MESSAGE_SHOWN else text[:MESSAGE_SHOWN] + f"… ({len(data)} bytes in all)"


async def _page(request: Request, *, replayed: bool, before: int | None, replays: list[Replay] | None = None,
                status_code: int = 200) -> Response:  # fmt: skip
    objects = context_of(request).engine.objects
    letters = await objects.dead_letters(include_replayed=replayed, before=before, limit=PAGE_SIZE + 1)
    headers = await objects.dead_letter_headers([d.id for d in letters[:PAGE_SIZE]])
    return render(request, "dead_letters.html", status_code=status_code, page="dead_letters",
                  letters=letters[:PAGE_SIZE], headers=headers, more=len(letters) > PAGE_SIZE, replayed=replayed,
                  replays=replays, text_of=text_of, can_replay=context_of(request).replayer is not None)  # fmt: skip


@router.get("/dead-letters")
async def dead_letters_page(request: Request, session: Annotated[Session, Depends(viewer)], replayed: bool = False,
                            before: int | None = None) -> Response:  # fmt: skip
    """Open dead letters, newest first (with ``replayed``, replayed ones too)."""
    return await _page(request, replayed=replayed, before=before)


@router.post("/dead-letters/replay")
async def replay(request: Request, action: Annotated[Action, Depends(operator)]) -> Response:
    """Replay one letter (an ``only`` field: its row's button) or the selected ones (``id`` fields), one by one.

    The page shows each one's outcome.
    """
    replayer = context_of(request).replayer
    if replayer is None:
        raise Refused(status.HTTP_503_SERVICE_UNAVAILABLE, "Dead-letter replay is not configured in this process.")
    chosen = [action.form.first("only") or ""] if action.form.first("only") else action.form.all("id")
    ids = [int(value) for value in chosen if value.isdigit()][:MAX_SELECTION]
    if not ids:
        raise Refused(status.HTTP_422_UNPROCESSABLE_ENTITY, "Select at least one dead letter to replay (field id).")
    replays = [await _replay_one(replayer, letter_id) for letter_id in ids]
    return await _page(request, replayed=action.form.first("replayed") == "true", before=None, replays=replays)


async def _replay_one(replayer: Replayer, letter_id: int) -> Replay:
    outcome = await replayer.replay(letter_id)
    if outcome is None:
        return Replay(letter_id, replayed=False, jobs_created=0, error="no such dead letter")
    replayed = outcome.letter.replayed_at is not None
    return Replay(letter_id, replayed, outcome.jobs_created, None if replayed else outcome.letter.last_replay_error)
