"""MuData objects whose modalities share feature names, without mudata's warning about it."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from anndata import AnnData


@contextmanager
def shared_var_names(modalities: Iterable[AnnData] | None) -> Iterator[None]:
    """Within this context, mudata does not warn that the global ``var_names`` are not unique.

    Gene and protein modalities share names by design: the antibody against CD9 is named
    ``CD9`` like its coding gene (13 of the 224 PBMC antibodies), and a predicted modality
    (``prot_pred``) is named like the measured one so that the two line up protein by protein.
    MuData's global ``var`` concatenates the modalities' ``var_names``, so those names appear
    twice there and mudata warns on every ``MuData()``, ``copy()`` and ``update()``.
    sctranslator addresses features through a modality (``mdata["prot"].var_names``), never
    through the global ``var``, so the repeat is harmless. The warning is only silenced when
    every modality's own ``var_names`` are unique: duplicates within a modality, which the
    warning is meant for, still warn.

    Parameters
    ----------
    modalities
        The modalities of the MuData objects created or updated in the context. ``None`` when
        they are not known before (a file being read): then the warning is always silenced,
        so use it only where each modality's names are checked afterwards, as
        :class:`~sctranslator.SCTRANSLATOR` does (it refuses duplicated gene or protein names).

    Examples
    --------
    >>> with shared_var_names(mdata.mod.values()):
    ...     train = mdata[mdata.obs["batch"] == "p3_0"].copy()
    """
    unique_within = modalities is None or all(data.var_names.is_unique for data in modalities)
    with warnings.catch_warnings():
        if unique_within:
            warnings.filterwarnings(
                "ignore",
                message=r"var_names are not unique",
                category=UserWarning,
                module=r"mudata",
            )
        yield
