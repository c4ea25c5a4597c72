"""Warning filters and log filters for dependencies' own messages, applied only where emitted."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

BANNER_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "lightning_fabric.utilities.seed",
)
"""Loggers of Lightning's banners: "GPU available", "TPU available", "💡 Tip: ... litlogger",
"`Trainer.fit` stopped", "Seed set to" (INFO records; warnings go through other paths)."""


class _BelowWarning(logging.Filter):
    """Drop records below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def banners_shown() -> bool:
    """Whether Lightning's banners are shown: when ``scvi.settings.verbosity <= DEBUG``."""
    import scvi

    return scvi.settings.verbosity <= logging.DEBUG


@contextmanager
def quiet_banners() -> Iterator[None]:
    """Within this context, hide Lightning's INFO banners, unless verbosity is DEBUG or lower.

    Lightning logs at INFO, on every ``Trainer``, which accelerators are available ("GPU
    available: False, used: False", "TPU available"), an advertisement ("💡 Tip: ...
    litlogger"), why training stopped, and "Seed set to 0" when ``scvi.settings.seed`` is
    set. A filter on the loggers of :data:`BANNER_LOGGERS` drops their records below
    WARNING; their levels, handlers and warnings are left alone, and the filter is removed on
    exit. With ``scvi.settings.verbosity = logging.DEBUG`` (or lower) nothing is hidden.

    Examples
    --------
    >>> with quiet_banners():
    ...     scvi.settings.seed = 0  # no "Seed set to 0"
    """
    if banners_shown():
        yield
        return
    quiet = _BelowWarning()
    loggers = [logging.getLogger(name) for name in BANNER_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


@contextmanager
def quiet_dependencies() -> Iterator[None]:
    """Within this context, hide dependencies' messages about themselves, not about the data.

    - Lightning's banners at INFO (:func:`quiet_banners`): shown again with
      ``scvi.settings.verbosity = logging.DEBUG``. Progress bars are not logging and stay.
    - Lightning <= 2.6 builds torch's deprecated ``LeafSpec`` in its data loader code, so the
      first ``Trainer.fit`` with a recent torch prints a :class:`FutureWarning`
      (```isinstance(treespec, LeafSpec)` is deprecated``). The cause is inside Lightning,
      not in how sctranslator calls it, and no argument of ours avoids it. The filter matches
      only that message, that category and that Lightning module. Remove it once Lightning
      no longer emits the warning.

    Both are lifted on exit (warning filters set inside the context are restored too, as with
    :class:`warnings.catch_warnings`).

    Examples
    --------
    >>> with quiet_dependencies():
    ...     trainer.fit(plan, datamodule)
    """
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings(
            "ignore",
            message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
            category=FutureWarning,
            module=r"lightning\.pytorch\.utilities\._pytree",
        )
        stack.enter_context(quiet_banners())
        yield
