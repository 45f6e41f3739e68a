"""structlog set-up shared by every Livermore command."""

from __future__ import annotations

import logging
import sys

import structlog

from livermore_schema.settings import LogSettings


def configure_logging(settings: LogSettings) -> None:
    """Configure structlog: JSON lines when not on a terminal (or when asked), console otherwise."""
    level = logging.getLevelNamesMapping().get(settings.level.upper(), logging.INFO)
    json_output = (
        settings.json_output if settings.json_output is not None else not sys.stderr.isatty()
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
