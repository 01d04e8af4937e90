"""Server-rendered pages: thin clients of the same Board methods the API uses, one module each."""

from __future__ import annotations

from fastapi import APIRouter

from failboard.web.pages import actions, detail, groups, jobs, projects

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
for module in (jobs, detail, actions, groups, projects):
    router.include_router(module.router)
