"""The HTTP face of failboard: the JSON API under ``/api/v1`` and the server-rendered pages."""

from failboard.web.app import create_app

__all__ = ["create_app"]
