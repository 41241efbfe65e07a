"""Structured logs: JSON lines when not on a terminal, readable lines on one.

Every line carries the service name (and whatever ids the caller binds:
stream, market, client_order_id ...). Secret values registered with
:func:`register_secret`, and any field whose name looks secret, are replaced by
``***`` before a line is written, from our code and from libraries alike.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|signature|private_key|authorization)", re.IGNORECASE
)
_secrets: set[str] = set()
MASK = "***"


def register_secret(value: str | None) -> None:
    """Never let ``value`` appear in a log line."""
    if value and len(value) >= 8:  # shorter values would mask ordinary words
        _secrets.add(value)


def _mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named fields and registered secret values."""
    for key, value in event.items():
        if _SECRET_KEY.search(key) and value not in (None, ""):
            event[key] = MASK
        elif isinstance(value, str) and _secrets:
            event[key] = _mask(value)
    return event


def configure_logging(
    service: str,
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
) -> None:
    """Set up structlog and route the standard library's loggers through it."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # a library's ``extra=`` fields are kept, and redacted like ours
            foreign_pre_chain=[*shared[:-1], structlog.stdlib.ExtraAdder(), redact],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if as_json else _identity,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websockets", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def _identity(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event
