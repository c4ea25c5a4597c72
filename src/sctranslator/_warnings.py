"""Warning filters for dependencies' own deprecations, applied only where they are emitted."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_dependencies() -> Iterator[None]:
    """Within this context, hide the deprecation warnings that dependencies raise about themselves.

    Lightning <= 2.6 builds torch's deprecated ``LeafSpec`` in its data loader code, so the
    first ``Trainer.fit`` with a recent torch prints a :class:`FutureWarning`
    (```isinstance(treespec, LeafSpec)` is deprecated``). The cause is inside Lightning, not
    in how sctranslator calls it, and no argument of ours avoids it. The filter matches only
    that message, that category and that Lightning module, and it is lifted on exit (filters
    set inside the context are restored too, as with :class:`warnings.catch_warnings`).
    Remove it once Lightning no longer emits the warning.

    Examples
    --------
    >>> with quiet_dependencies():
    ...     trainer.fit(plan, datamodule)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
            category=FutureWarning,
            module=r"lightning\.pytorch\.utilities\._pytree",
        )
        yield
