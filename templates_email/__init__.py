"""Jinja2 templates for every outgoing mail; rendering lives in :mod:`workers.compose`."""

from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent
