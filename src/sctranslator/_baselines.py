"""Reference predictors that every accuracy table shows next to the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from sklearn.decomposition import PCA
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsRegressor


def average_profile(train_proteins: pd.DataFrame, query_index: pd.Index) -> pd.DataFrame:
    """Predict every query cell as the training cells' mean protein profile."""
    mean = train_proteins.mean(axis=0, skipna=True)
    return pd.DataFrame(
        np.tile(mean.to_numpy(), (len(query_index), 1)),
        index=query_index,
        columns=train_proteins.columns,
    )


def _log_normalised(adata: AnnData) -> np.ndarray:
    """Return counts (``X``) normalised to 10,000 per cell and log1p-transformed with scanpy."""
    adata = AnnData(adata.X.copy())
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    return np.asarray(adata.X.todense() if hasattr(adata.X, "todense") else adata.X)


def _pca_regression(
    model, train_rna: AnnData, train_proteins: pd.DataFrame, query_rna: AnnData, n_pcs: int
) -> pd.DataFrame:
    """Fit ``model`` from the training RNA's principal components to the proteins.

    Query genes are aligned to the training genes and projected on the training PCA; only
    training cells with every protein measured are used.
    """
    query_rna = query_rna[:, train_rna.var_names]
    measured = train_proteins.notna().all(axis=1).to_numpy()
    x_train = _log_normalised(train_rna)[measured]
    pca = PCA(n_components=min(n_pcs, *x_train.shape), random_state=0).fit(x_train)
    model.fit(pca.transform(x_train), train_proteins.to_numpy()[measured])
    prediction = model.predict(pca.transform(_log_normalised(query_rna)))
    return pd.DataFrame(prediction, index=query_rna.obs_names, columns=train_proteins.columns)


def ridge_on_pca(
    train_rna: AnnData, train_proteins: pd.DataFrame, query_rna: AnnData, n_pcs: int = 50
) -> pd.DataFrame:
    """Ridge regression of proteins on the RNA's principal components.

    RNA counts (``X``) are normalised to 10,000 per cell and log1p-transformed (scanpy); the
    ridge penalty is chosen by efficient leave-one-out cross-validation
    (:class:`~sklearn.linear_model.RidgeCV`).
    """
    ridge = RidgeCV(alphas=np.logspace(-2, 4, 13))
    return _pca_regression(ridge, train_rna, train_proteins, query_rna, n_pcs)


def knn_on_pca(
    train_rna: AnnData,
    train_proteins: pd.DataFrame,
    query_rna: AnnData,
    n_pcs: int = 50,
    n_neighbors: int = 15,
) -> pd.DataFrame:
    """Average proteins of the ``n_neighbors`` nearest training cells in RNA PCA space.

    Same RNA processing as :func:`ridge_on_pca`; neighbours are weighted by inverse distance.
    """
    knn = KNeighborsRegressor(n_neighbors=n_neighbors, weights="distance")
    return _pca_regression(knn, train_rna, train_proteins, query_rna, n_pcs)


def kernel_ridge_on_pca(
    train_rna: AnnData, train_proteins: pd.DataFrame, query_rna: AnnData, n_pcs: int = 50
) -> pd.DataFrame:
    """Kernel ridge regression (RBF kernel) of proteins on the RNA's principal components.

    Same RNA processing as :func:`ridge_on_pca`. The penalty and the kernel width (relative to
    the median squared distance between training cells) are chosen by 5-fold
    cross-validation on the training cells (:class:`~sklearn.model_selection.GridSearchCV`).
    """
    return _pca_regression(RBFKernelRidgeCV(), train_rna, train_proteins, query_rna, n_pcs)


class RBFKernelRidgeCV:
    """RBF kernel ridge whose penalty and width are cross-validated on the training data."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> RBFKernelRidgeCV:
        sample = x[np.random.default_rng(0).choice(len(x), min(len(x), 500), replace=False)]
        squared = ((sample[:, None] - sample[None]) ** 2).sum(-1)
        median = float(np.median(squared[squared > 0]))
        grid = {
            "alpha": [0.03, 0.1, 0.3, 1.0],
            "gamma": [g / median for g in (0.25, 0.5, 1, 2, 4)],
        }
        self.search = GridSearchCV(KernelRidge(kernel="rbf"), grid, cv=5).fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.search.predict(x)
