"""Checks of a dealer file that need more than its schema: every template block renders."""

from __future__ import annotations

from pathlib import Path

from models.dealer_config import ConfigError, FileConfig, load_config_file
from workers.compose import TemplateRenderError, check_templates
from workers.mail_context import sample_context


def check_config(config: FileConfig) -> None:
    for index, dealer in enumerate(config.dealers):
        data = dealer.model_dump(mode="json", by_alias=True)
        try:
            check_templates(data, lambda lang, d=data: sample_context(d, lang, placeholders=False))
        except TemplateRenderError as exc:
            block = exc.block.removeprefix("built-in ")
            raise ConfigError(f"dealers[{index}].{block}", exc.reason) from None


def load_checked(path: str | Path) -> FileConfig:
    config = load_config_file(path)
    check_config(config)
    return config
