"""The batch command's progress bar keeps log warnings on lines of their own."""

from __future__ import annotations

import logging

import pytest

from cometsync._cli import _setup_logging
from cometsync._cli_batch import _Progress


def test_a_warning_logged_while_the_bar_runs_is_written_above_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A cometsync WARNING during a batch starts its own line instead of trailing the bar."""
    pytest.importorskip("tqdm")
    logger = logging.getLogger("cometsync")
    before = list(logger.handlers)
    level = logger.level
    try:
        for handler in before:
            logger.removeHandler(handler)
        _setup_logging(0)
        progress = _Progress(enabled=True)
        progress.start(3)
        logger.warning("fallback model h2 costs over 3x the primary")
        progress.close()
        logger.warning("after the bar")
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in before:
            logger.addHandler(handler)
        logger.setLevel(level)
    err = capsys.readouterr().err
    head, _, _ = err.partition("cometsync: WARNING: fallback model h2")
    assert head.endswith(("\r", "\n")), repr(err)
    assert err.rstrip("\n").endswith("cometsync: WARNING: after the bar")
