"""The templates of every outgoing mail, one folder per kind (``<kind>/subject.<lang>.txt``,
``body.<lang>.txt``; the autoresponse has its blocks), the HTML layout, and the labels.
Rendering lives in :mod:`workers.render`."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).parent


@cache
def labels(lang: str) -> dict[str, Any]:
    """The words of one language (``labels.toml``); unknown languages get English."""
    data = tomllib.loads((TEMPLATE_DIR / "labels.toml").read_text(encoding="utf-8"))
    return dict(data.get(lang) or data["en"])
