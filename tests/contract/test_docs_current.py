"""The generated reference docs match the code (run `python -m netobs.docs` after a change)."""

from __future__ import annotations

from netobs.docs import ROOT, config_markdown, metrics_markdown


def test_config_reference_is_current() -> None:
    assert (ROOT / "docs/config.md").read_text() == config_markdown(), "run: python -m netobs.docs"


def test_metric_catalogue_doc_is_current() -> None:
    assert (ROOT / "docs/metrics.md").read_text() == metrics_markdown(), "run: python -m netobs.docs"
