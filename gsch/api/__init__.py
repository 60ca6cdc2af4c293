"""The HTTP API (aiohttp): reads answer from the SQLite read model, never from JetStream;
writes (submit, cancel) publish to the log and need the write token."""

from gsch.api.app import make_app

__all__ = ["make_app"]
