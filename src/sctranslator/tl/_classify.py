"""Cell-origin classification from RNA and (translated) protein, with cross-validated scores."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from mudata import MuData
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import LeaveOneGroupOut, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sctranslator.data import get_matrix

from ._embed import check_cells, rna_pca, standardized_pca
from ._utils import check_free, dense, target

FEATURES = ("rna", "protein", "joint")


def classify(
    mdata: MuData,
    *,
    label_key: str,
    rna: str | None = "rna",
    protein: str | None = "prot_pred",
    rna_layer: str | None = None,
    protein_layer: str | None = None,
    features: str | None = None,
    n_comps: int = 30,
    cv: int = 5,
    cv_key: str | None = None,
    C: float = 1.0,
    class_weight: str | None = "balanced",
    key_added: str = "sct_classify",
    random_state: int = 0,
    overwrite: bool = False,
    copy: bool = False,
) -> pd.DataFrame | MuData:
    """Classify where cells come from (cell type, tissue, tumour or normal) from RNA and protein.

    Each modality is embedded by PCA as in :func:`~sctranslator.tl.cluster` (RNA counts
    after ``log1p`` of counts per 10,000; proteins, e.g. those translated by
    :func:`~sctranslator.tl.fill_protein`, z-scored). Both PCAs use every cell and never the
    labels. A logistic regression (scikit-learn, each component standardised, L2 penalty
    ``C``) is trained on the cells that carry a label in ``obs[label_key]`` and predicts the
    cells whose label is missing (NaN).

    Before that, the labelled cells are cross-validated with three feature sets, RNA only,
    protein only and both (``"joint"``), so the returned table says whether the proteins add
    anything. Proteins translated from RNA are a function of the same RNA, so they can only
    re-weigh what the RNA holds: expect them to help when the label depends on what the
    model learnt to read (e.g. surface markers), and not otherwise.

    Parameters
    ----------
    mdata
        MuData whose modalities ``rna`` and ``protein`` hold its cells in its order.
    label_key
        ``mdata.obs`` column with the label of each cell; NaN for cells to predict.
    rna
        RNA modality with raw counts, or ``None``.
    protein
        Protein modality (predicted or measured, on a log-like scale such as CLR), or
        ``None``.
    rna_layer
        Layer of ``rna`` with raw counts; ``None`` (default) for ``X``.
    protein_layer
        Layer of ``protein``; ``None`` for ``X``.
    features
        Feature set of the classifier that labels the cells: ``"rna"``, ``"protein"`` or
        ``"joint"``; by default ``"joint"`` when both modalities are given, else the one
        given.
    n_comps
        Principal components per modality.
    cv
        Folds of the stratified cross-validation (fewer when a class has fewer labelled
        cells, with a warning).
    cv_key
        ``obs`` column (e.g. ``"batch"``) to cross-validate by instead: each of its groups
        is held out in turn, so the scores measure how labels carry across groups.
    C
        Inverse L2 penalty of the logistic regression.
    class_weight
        ``"balanced"`` weighs classes inversely to their size (default), ``None`` weighs
        cells equally.
    key_added
        ``obs[key_added]``: the given labels, and the predicted ones where the label is
        missing; ``obsm[f"{key_added}_probabilities"]``: probability of each class (columns
        in ``uns[key_added]["classes"]``; cross-validated for labelled cells);
        ``uns[key_added]``: ``params``, ``classes``, ``cv_scores`` (the returned table) and
        ``confusion`` (cross-validated counts of the labelled cells, true classes down,
        predicted across, for ``features``).
    random_state
        Seed of the PCAs and of the folds.
    overwrite
        Replace existing entries under these keys (otherwise an error).
    copy
        Write into a copy of ``mdata`` and return the copy instead of the table.

    Returns
    -------
    Cross-validated scores of the labelled cells, one row per feature set (``"rna"``,
    ``"protein"``, ``"joint"``, as available): ``balanced_accuracy`` (mean recall of the
    classes), ``macro_f1`` and ``n_features``, computed on the pooled held-out predictions.
    The annotated copy instead when ``copy``.

    Examples
    --------
    >>> sct.tl.fill_protein(mdata, model, key_added="prot_pred")
    >>> mdata.obs["known"] = mdata.obs["celltype"].where(mdata.obs["batch"] == "p3_0")
    >>> scores = sct.tl.classify(mdata, label_key="known", cv_key="batch")
    >>> mdata.obs["sct_classify"].value_counts()
    >>> sct.pl.confusion_matrix(mdata, truth="celltype")
    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"classify expects a MuData, got {type(mdata).__name__}.")
    if label_key not in mdata.obs:
        raise KeyError(
            f"label_key {label_key!r} not found in obs; available: {list(mdata.obs.columns)}."
        )
    if cv_key is not None and cv_key not in mdata.obs:
        raise KeyError(
            f"cv_key {cv_key!r} not found in obs; available: {list(mdata.obs.columns)}."
        )
    if rna is None and protein is None:
        raise ValueError("Pass at least one of `rna` and `protein`.")
    available = [f for f, ok in zip(FEATURES, (rna, protein, rna and protein), strict=True) if ok]
    features = available[-1] if features is None else features
    if features not in available:
        raise ValueError(f"features must be one of {available} here, got {features!r}.")
    check_cells(mdata, [key for key in (rna, protein) if key is not None])
    probabilities_key = f"{key_added}_probabilities"
    check_free(
        mdata, {"obs": [key_added], "obsm": [probabilities_key], "uns": [key_added]}, overwrite
    )

    labels = mdata.obs[label_key]
    known = labels.notna().to_numpy()
    y = labels[known].astype(str).to_numpy()
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"obs[{label_key!r}] holds {len(classes)} class among its labelled cells; "
            "a classifier needs at least two."
        )
    splits = _splits(mdata.obs.loc[known, cv_key] if cv_key else None, y, cv, random_state)

    blocks = {}
    if rna is not None:
        blocks["rna"] = rna_pca(mdata[rna], rna_layer, n_comps, random_state)
    if protein is not None:
        values = get_matrix(mdata[protein], layer=protein_layer, what=f"modality {protein!r}")
        blocks["protein"] = standardized_pca(dense(values), n_comps, random_state)
    if rna is not None and protein is not None:
        blocks["joint"] = np.concatenate([blocks["rna"], blocks["protein"]], axis=1)

    def model():
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=C, class_weight=class_weight, max_iter=5000),
        )

    rows, held_out = {}, {}
    for name, x in blocks.items():
        proba = _cross_validate(model, x[known], y, classes, splits)
        predicted = classes[proba.argmax(1)]
        held_out[name] = (predicted, proba)
        rows[name] = {
            "balanced_accuracy": balanced_accuracy_score(y, predicted),
            "macro_f1": f1_score(y, predicted, labels=classes, average="macro", zero_division=0),
            "n_features": x.shape[1],
        }
    table = pd.DataFrame(rows).T
    table["n_features"] = table["n_features"].astype(int)
    table.index.name = "features"

    probabilities = np.zeros((mdata.n_obs, len(classes)), dtype=np.float32)
    probabilities[known] = held_out[features][1]
    filled = labels.astype(object).where(known, None).to_numpy()
    if (~known).any():
        final = model().fit(blocks[features][known], y)
        proba = _align(final.predict_proba(blocks[features][~known]), final, classes)
        probabilities[~known] = proba
        filled[~known] = classes[proba.argmax(1)]
    confusion = pd.crosstab(
        pd.Categorical(y, categories=classes),
        pd.Categorical(held_out[features][0], classes),
        rownames=["true"],
        colnames=["predicted"],
        dropna=False,
    )
    confusion.index, confusion.columns = confusion.index.astype(str), confusion.columns.astype(str)

    annotated = target(mdata, copy)
    annotated.obs[key_added] = pd.Categorical(filled.astype(str), categories=classes)
    annotated.obsm[probabilities_key] = probabilities
    annotated.uns[key_added] = {
        "params": {
            "label_key": label_key,
            "rna": rna,
            "protein": protein,
            "features": features,
            "n_comps": n_comps,
            "cv": "leave one group out" if cv_key else f"{len(splits)}-fold stratified",
            "cv_key": cv_key,
            "C": C,
            "class_weight": class_weight,
            "random_state": random_state,
            "n_labelled": int(known.sum()),
            "n_predicted": int((~known).sum()),
        },
        "classes": [str(c) for c in classes],
        "cv_scores": table,
        "confusion": confusion,
    }
    return annotated if copy else table


def _splits(groups, y: np.ndarray, cv: int, random_state: int) -> list:
    """Train/test indices of the labelled cells: by group, or stratified folds."""
    if groups is not None:
        groups = groups.astype(str).to_numpy()
        if len(np.unique(groups)) < 2:
            raise ValueError("The labelled cells belong to a single cv_key group; need two.")
        return list(LeaveOneGroupOut().split(y, y, groups))
    counts = pd.Series(y).value_counts()
    if counts.min() < 2:
        raise ValueError(
            f"Class {counts.idxmin()!r} has a single labelled cell; cross-validation needs at "
            "least two per class (merge or drop it)."
        )
    n_splits = min(cv, int(counts.min()))
    if n_splits < cv:
        warnings.warn(
            f"Class {counts.idxmin()!r} has {counts.min()} labelled cells: cross-validating "
            f"with {n_splits} folds instead of {cv}.",
            UserWarning,
            stacklevel=3,
        )
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return list(folds.split(y, y))


def _cross_validate(
    model, x: np.ndarray, y: np.ndarray, classes: np.ndarray, splits
) -> np.ndarray:
    """Held-out class probabilities of each labelled cell, columns in ``classes`` order."""
    proba = np.zeros((len(y), len(classes)))
    for train, test in splits:
        fitted = model().fit(x[train], y[train])
        proba[test] = _align(fitted.predict_proba(x[test]), fitted, classes)
    return proba


def _align(proba: np.ndarray, fitted, classes: np.ndarray) -> np.ndarray:
    """Place the probabilities of the classes a fold saw in the columns of all ``classes``."""
    out = np.zeros((len(proba), len(classes)))
    out[:, np.searchsorted(classes, fitted.classes_)] = proba
    return out
