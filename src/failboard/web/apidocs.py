"""``/docs``: the API's Swagger UI, every byte of it served by this server.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script, so it needed
a looser Content-Security-Policy and the internet. This one serves the same Swagger UI from the
fastapi-offline package (its ``static/`` folder, mounted at ``/static/apidocs/``) and starts it
from ``static/apidocs.js``: it runs under the strict policy of every other page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from failboard.web.templating import render

__all__ = ["ASSETS", "assets", "router"]

router = APIRouter(include_in_schema=False)

# Under /static/, which is public (web/security.py): vendor JS and CSS, no data.
ASSETS = "/static/apidocs"


def assets() -> StaticFiles:
    """Swagger UI's bundle and stylesheet, as fastapi-offline ships them (only its files: its
    ``FastAPIOffline`` app starts Swagger UI with an inline script)."""
    return StaticFiles(packages=[("fastapi_offline", "static")])


@router.get("/docs")
def docs(request: Request) -> Response:
    return render(
        request, "apidocs.html", {"assets": ASSETS, "openapi_url": request.app.openapi_url}
    )
