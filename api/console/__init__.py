"""The operator's console under ``/ui``: server-rendered pages over the same engine and tokens as the API.

Overview, objects, jobs, workers, dead letters, backfills and flow limits, each a module of this package
with its routes; ``auth`` holds signing in and the doors every route goes through; the templates and the
one stylesheet and script are files of the package (nothing is fetched from another site, nothing is
built at run time).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from conveyor.api.console import auth, backfills, dead_letters, jobs, limits, objects, overview, workers
from conveyor.api.console.rendering import HERE, render
from conveyor.api.console.session import Sessions
from conveyor.api.console.throughput import Throughput
from conveyor.api.context import ApiContext


def install(app: FastAPI, context: ApiContext) -> None:
    """Serve the console on ``app``: its routes, its static files, and its two refusals as pages."""
    app.state.console_sessions = Sessions(context.settings)
    app.state.console_throughput = Throughput(context.engine)
    for module in (auth, overview, objects, jobs, workers, dead_letters, backfills, limits):
        app.include_router(module.router, include_in_schema=False)
    # Links are followed: a development install is a tree of links to the checkout's files.
    static = StaticFiles(directory=HERE / "static", follow_symlink=True)
    app.mount("/ui/static", static, name="console-static")

    @app.exception_handler(auth.LoginRequired)
    async def login_required(request: Request, exc: auth.LoginRequired) -> Response:
        return auth.login_redirect(exc.target)

    @app.exception_handler(auth.Refused)
    async def refused(request: Request, exc: auth.Refused) -> Response:
        return render(request, "refused.html", status_code=exc.status_code, message=exc.message)
