"""`yidi calc`: the settlement core on one case file (domain/calc-case-format.md).

Prints the result JSON and exits 0, or prints ``{"error": {"reason": …}}`` and exits 2 when
the case is refused. It touches no database, network, configuration or clock.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from yidi_core.case_format import error_document, parse_case, result_document
from yidi_core.errors import DomainError, invalid

REFUSED = 2


def _read(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise invalid("INVALID_ARGUMENT", "case", f"cannot read {source}: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid("INVALID_ARGUMENT", "case", f"not valid JSON: {error}") from None


def _print(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def run_calc(source: str, *, explain: bool = False) -> int:
    """Settle the case read from ``source`` (a path, or ``-`` for standard input) and print the outcome."""
    try:
        settlement = parse_case(_read(source)).settle()
    except DomainError as error:
        _print(error_document(error))
        return REFUSED
    _print(result_document(settlement, explain=explain))
    return 0
