"""Text that both databases store. (Pure.)

PostgreSQL's text refuses NUL (a ``=00`` in a quoted-printable body, a NUL in a display name);
both drivers refuse lone surrogates, which undecodable 8-bit header bytes become. A mail must
never fail to store or to become a lead for that: NUL is dropped and a lone surrogate becomes
U+FFFD, in one place for every statement (:mod:`models.db`) and for the intake's own store.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATE.sub("\ufffd", value)
    return value


def safe_value(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


def safe_parameters(parameters: Any) -> Any:
    """DB-API parameters (a sequence, a mapping, or a list of them for executemany) with every
    string made safe; the same object when nothing needed changing."""
    if isinstance(parameters, dict):
        if any(isinstance(v, str) and v != safe_text(v) for v in parameters.values()):
            return {k: safe_value(v) for k, v in parameters.items()}
        return parameters
    if isinstance(parameters, tuple | list):
        if parameters and isinstance(parameters[0], dict | tuple | list):
            return type(parameters)(safe_parameters(p) for p in parameters)
        if any(isinstance(v, str) and v != safe_text(v) for v in parameters):
            return type(parameters)(safe_value(v) for v in parameters)
    return parameters
