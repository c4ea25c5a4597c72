"""The main job: train on one PBMC batch, translate another batch's RNA into proteins."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import scvi
from mudata import MuData

from sctranslator import datasets, metrics, pl, pp, tl
from sctranslator._baselines import average_profile, kernel_ridge_on_pca, ridge_on_pca
from sctranslator._io import write_atomic
from sctranslator._mudata import no_pull, shared_var_names
from sctranslator._warnings import quiet_banners
from sctranslator.model import SCTRANSLATOR

logger = logging.getLogger(__name__)


def run_demo(
    out_dir: str | Path = "sctranslator_demo",
    max_epochs: int | None = None,
    train_batch: str = "p3_0",
    test_batch: str = "p4_0",
    overwrite: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Translate RNA with the shipped reference, then with a model trained on one batch.

    First the shipped PBMC reference (:meth:`SCTRANSLATOR.load_pretrained`) fills the proteins
    of the RNA-only batch p1_0 (``pbmc_rna_only_reference.h5mu``). Then a model trained on the
    paired cells of ``train_batch`` predicts ``test_batch`` from RNA alone; prints and returns
    a table of mean per-protein Pearson, mean per-cell Pearson and RMSE (on the model's CLR
    scale) for the model, the average-profile control, ridge and RBF kernel ridge on RNA PCA;
    writes ``pbmc_translated.h5mu`` (the test cells with the predicted modality ``prot_pred``)
    and ``predicted_vs_measured.png`` into ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder for the outputs.
    max_epochs
        Maximum training epochs; ``None`` for the model's default
        (:func:`~sctranslator.model.default_max_epochs`). Early stopping on validation
        per-protein Pearson usually ends training sooner.
    train_batch, test_batch
        Batches of :func:`~sctranslator.datasets.pbmc_cite_mini`.
    overwrite
        Replace existing output files.
    seed
        Random seed (``scvi.settings.seed``).
    """
    out_dir = Path(out_dir)
    h5mu_path, png_path = out_dir / "pbmc_translated.h5mu", out_dir / "predicted_vs_measured.png"
    reference_path = out_dir / "pbmc_rna_only_reference.h5mu"
    for path in (h5mu_path, png_path, reference_path):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists; pass --overwrite to replace it.")
    with quiet_banners():  # no "Seed set to"; see scvi.settings.verbosity
        scvi.settings.seed = seed
    mdata = datasets.pbmc_cite_mini()
    with no_pull(), shared_var_names(mdata.mod.values()):  # 13 antibodies named like genes
        train = mdata[mdata.obs["batch"] == train_batch].copy()
        test = mdata[mdata.obs["batch"] == test_batch].copy()
    reference = SCTRANSLATOR.load_pretrained("pbmc")
    reliability = reference.protein_reliability.dropna().sort_values()
    print(
        "1. The shipped reference (SCTRANSLATOR.load_pretrained('pbmc'), trained on the paired "
        f"batches): held-out Pearson median {reliability.median():.2f}; most trustworthy "
        f"{', '.join(reliability.index[-3:][::-1])}; least {', '.join(reliability.index[:3])}."
    )
    with no_pull():
        rna_only = MuData({"rna": mdata[mdata.obs["batch"] == "p1_0"]["rna"].copy()})
    tl.fill_protein(rna_only, reference, key_added="prot_pred")
    with no_pull(), shared_var_names(rna_only.mod.values()):  # write_h5mu updates the MuData
        write_atomic(reference_path, rna_only.write_h5mu, overwrite=overwrite)
    print(f"   Translated the {rna_only.n_obs} RNA-only cells of p1_0 into {reference_path}.")
    print(
        f"2. A model trained on your own cells, for comparison: {train.n_obs} paired cells of "
        f"{train_batch}; predicting {test.n_obs} cells of {test_batch} from RNA."
    )

    SCTRANSLATOR.setup_mudata(
        train,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities={"rna_layer": "rna", "protein_layer": "prot"},
    )
    model = SCTRANSLATOR(train)
    start = time.perf_counter()
    model.train(max_epochs=max_epochs)
    epochs = len(model.history["pearson_validation"])
    print(f"Trained {epochs} epochs in {time.perf_counter() - start:.0f} s.")

    scale = model.init_params_["non_kwargs"]["protein_normalization"]
    measured = pp.normalize_protein(test["prot"], method=scale, layer="counts")
    train_measured = pp.normalize_protein(train["prot"], method=scale, layer="counts")
    predictions = {
        "sctranslator": model.predict_protein(test["rna"]),
        "average profile (control)": average_profile(train_measured, test.obs_names),
        "ridge on RNA PCA": ridge_on_pca(train["rna"], train_measured, test["rna"]),
        "kernel ridge on RNA PCA": kernel_ridge_on_pca(train["rna"], train_measured, test["rna"]),
    }
    table = pd.DataFrame(
        {name: metrics.evaluate(pred, measured) for name, pred in predictions.items()}
    ).T[["protein_pearson_mean", "cell_pearson_mean", "rmse"]]
    table.columns = ["per-protein Pearson (mean)", "per-cell Pearson (mean)", f"RMSE ({scale})"]
    print(table.round(3).to_string())

    # The query as a user would hold it: RNA only. A new MuData rather than deleting "prot" and
    # calling update(), which would leave the deleted modality's columns and obsm mask behind.
    with no_pull():
        query = MuData({"rna": test["rna"].copy()})
    query.obs = test.obs.copy()
    tl.fill_protein(query, model, key_added="prot_pred")
    with no_pull(), shared_var_names(query.mod.values()):
        write_atomic(h5mu_path, query.write_h5mu, overwrite=overwrite)
    figure = pl.predicted_vs_measured(predictions["sctranslator"], measured, show=False)
    write_atomic(
        png_path, lambda path: figure.savefig(path, dpi=120, format="png"), overwrite=overwrite
    )
    print(f"Wrote {h5mu_path} and {png_path}.")
    return table
