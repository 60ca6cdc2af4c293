"""The HTTP read API (aiohttp): answers from the SQLite read model, never from JetStream."""

from gsch.api.app import make_app

__all__ = ["make_app"]
