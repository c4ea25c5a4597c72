"""MuData handling that changes nothing outside the package.

Both context managers act only inside their ``with`` block: importing sctranslator sets no
mudata option and no warning filter.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import mudata
from anndata import AnnData


@contextmanager
def no_pull() -> Iterator[None]:
    """Within this context, mudata does not pull the modalities' columns into the global tables.

    mudata < 0.4 copies the modalities' ``obs``/``var`` columns into the MuData's global
    ``obs``/``var`` on every ``MuData()``, ``copy()`` and ``update()`` (and warns, with a
    :class:`FutureWarning`, that 0.4 stops doing so). sctranslator never reads pulled columns:
    it sets the global ``obs`` itself and reads ``var`` from the modalities. Pulling also warned
    "Cannot join columns with the same name" whenever gene and protein names coincide (CD9 the
    gene, CD9 the antibody). This context adopts mudata 0.4's behaviour for the MuData objects
    that sctranslator builds or updates, and restores the user's option on exit. In a mudata
    where the option is gone (``ValueError``), not pulling is the only behaviour and the
    context does nothing.

    Examples
    --------
    >>> with no_pull():
    ...     mdata = MuData({"rna": rna, "prot": prot})
    """
    try:
        options = mudata.set_options(pull_on_update=False)
    except ValueError:  # mudata >= 0.4: the option is gone and nothing is pulled
        yield
        return
    with options:
        yield


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
