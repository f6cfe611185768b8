"""Checks of a dealer file that need more than its schema: every template block renders."""

from __future__ import annotations

from pathlib import Path

from models.dealer_config import ConfigError, FileConfig, load_config_file
from workers.render.blocks import check_blocks
from workers.render.context import sample_context
from workers.render.sandbox import TemplateRenderError


def check_config(config: FileConfig) -> None:
    for index, dealer in enumerate(config.dealers):
        try:
            check_blocks(
                dealer.templates,
                dealer.language,
                lambda lang, d=dealer: sample_context(d, lang, placeholders=False),
            )
        except TemplateRenderError as exc:
            block = exc.block.removeprefix("built-in ")
            raise ConfigError(f"dealers[{index}].{block}", exc.reason) from None


def load_checked(path: str | Path) -> FileConfig:
    config = load_config_file(path)
    check_config(config)
    return config
