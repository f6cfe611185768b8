"""Templates dealers write are untrusted: a block that would eat memory or time is refused by
the configuration check, quickly and without allocating what it asks for.

Each bomb goes into a real dealer file, through the same check ``lms config check`` and
``apply`` run, with its time and its peak allocation measured (tracemalloc).
"""

from __future__ import annotations

import json
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest

from models.dealer_config import ConfigError
from tests.support.stack import DEMO_CONFIG
from workers.config_checks import load_checked

NESTED = "".join(f"{{% for i{n} in [1,2,3,4,5,6,7,8,9,10] %}}" for n in range(6)) + "x" + "{% endfor %}" * 6
BOMBS = {
    "a value doubled 24 times (168 million characters)": "{% set x = 'abcdefg' %}"
    + "{% set x = x ~ x %}" * 24
    + "{{ x }}",
    "six nested loops (a million iterations)": NESTED,
    "powers of powers": "{{ ((10**64)**64)**64 }}",
    "center(10**8)": "{{ 'x'|center(10**8) }}",
    "a format width of 100 million": "{{ '%0100000000d' % 1 }}",
    "the format filter with a huge width": "{{ '%0100000000d'|format(1) }}",
    "replace multiplying a text by itself": "{% set a = 'a' * 2000 %}{{ a|replace('', a) }}",
    "a macro calling itself twice per level": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    ),
    "a list repeated past every bound": "{{ ([1] * 100000000)|length }}",
    "indent by a hundred million": "{{ 'x\\ny'|indent(100000000) }}",
}


def dealer_file(tmp_path: Path, block: str) -> Path:
    for asset in ("header.png", "expose.pdf"):
        shutil.copy(DEMO_CONFIG.parent / asset, tmp_path / asset)
    text = DEMO_CONFIG.read_text().replace(
        "[dealers.templates.default]\n",
        f"[dealers.templates.default]\nseller_footer = {json.dumps(block)}\n",
        1,
    )
    path = tmp_path / "dealer.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_template_bomb_is_refused_within_a_second_and_50_mb(tmp_path: Path, bomb: str) -> None:
    path = dealer_file(tmp_path, BOMBS[bomb])
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ConfigError) as refused:
            load_checked(path)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.key == "dealers[0].templates.default.seller_footer"  # the file names the block
    assert elapsed < 1.0, f"{bomb}: refused only after {elapsed:.2f} s"
    assert peak < 50 * 1024 * 1024, f"{bomb}: {peak / 1e6:.0f} MB allocated before refusing"


def test_a_harmless_block_still_passes(tmp_path: Path) -> None:
    path = dealer_file(tmp_path, "<p>{{ editor.name }} · {{ '%05d'|format(42) }} · {{ 'x'|center(9) }}</p>")
    assert load_checked(path).dealers[0].id == "muster"
