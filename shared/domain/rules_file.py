"""One way to read a configuration file of rules: TOML, validated by the caller's parser.

Routing rules (:mod:`shared.domain.routing_rules`), proactive rules
(``functions/proactive/rules.py``) and outbound templates (:mod:`shared.outbound.templates`)
are TOML files versioned with the code. :func:`load_toml` reads one and hands the parsed
table to the caller's ``parse`` (which validates it and raises its own error class); a file
that is missing or not TOML raises what the caller's ``error`` makes of the problem, so each
kind of file keeps its own, named exception.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Builds the caller's exception from the file's name and one problem.
ErrorFactory = Callable[[str, str], Exception]


def read_toml(path: str | Path, error: ErrorFactory, source: str | None = None) -> dict[str, Any]:
    """The parsed TOML table of ``path``; ``error(source, problem)`` is raised when it cannot be read."""
    import tomllib  # noqa: PLC0415 - rules and templates are read on first use, not at import

    where = source if source is not None else str(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise error(where, "the file does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(where, f"not valid TOML: {exc}") from None


def load_toml(
    path: str | Path,
    parse: Callable[[dict[str, Any], str], T],
    error: ErrorFactory,
    source: str | None = None,
) -> T:
    """Read ``path`` and return ``parse(data, source)`` (``source`` defaults to the path)."""
    where = source if source is not None else str(path)
    return parse(read_toml(path, error, where), where)
