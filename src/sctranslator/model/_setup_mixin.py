"""Registering an AnnData or a MuData with the model class (scvi-tools' setup methods)."""

from __future__ import annotations

import pandas as pd
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data.fields import (
    CategoricalObsField,
    LayerField,
    MuDataCategoricalObsField,
    MuDataLayerField,
    ObsmField,
)
from scvi.utils import setup_anndata_dsp

from sctranslator.data import allows_missing_genes, check_paired, get_matrix, get_modality

from ._model_utils import validate_training_data


class SetupMixin:
    """``setup_anndata`` and ``setup_mudata``: check the data and register its fields."""

    @classmethod
    @setup_anndata_dsp.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        protein_expression_obsm_key: str | None = None,
        protein_names_uns_key: str | None = None,
        batch_key: str | None = None,
        **kwargs,
    ):
        """%(summary)s.

        Proteins are read from ``adata.obsm[protein_expression_obsm_key]`` (the totalVI
        layout). NaN marks a protein not measured in a cell; a protein that is zero in every
        cell of a batch also counts as unmeasured there. Both are left out of the loss.

        Parameters
        ----------
        %(param_adata)s
        layer
            Layer with raw RNA counts; ``None`` for ``adata.X``.
        protein_expression_obsm_key
            Key in ``adata.obsm`` with raw protein counts (DataFrame or array).
        protein_names_uns_key
            Key in ``adata.uns`` with the protein names when the ``obsm`` entry is an array.
        %(param_batch_key)s

        Examples
        --------
        >>> adata.obsm["protein_expression"] = protein_counts  # DataFrame, cells x proteins
        >>> sct.SCTRANSLATOR.setup_anndata(
        ...     adata, layer="counts", protein_expression_obsm_key="protein_expression",
        ...     batch_key="batch",
        ... )
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if protein_expression_obsm_key not in adata.obsm:
            raise KeyError(
                f"protein_expression_obsm_key {protein_expression_obsm_key!r} not found in "
                f"adata.obsm; available: {list(adata.obsm)}."
            )
        if batch_key is not None and batch_key not in adata.obs:
            raise KeyError(f"batch_key {batch_key!r} not found in adata.obs.")
        proteins = adata.obsm[protein_expression_obsm_key]
        if isinstance(proteins, pd.DataFrame):
            protein_names, proteins = proteins.columns, proteins.to_numpy()
        elif protein_names_uns_key is not None:
            protein_names = adata.uns[protein_names_uns_key]
        else:
            raise ValueError("Pass `protein_names_uns_key` when proteins are an array.")
        validate_training_data(
            get_matrix(adata, layer=layer, what="the RNA"),
            adata.obs_names,
            adata.var_names,
            proteins,
            protein_names,
            missing_genes=allows_missing_genes(adata),
        )
        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True),
            CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key),
            ObsmField(
                REGISTRY_KEYS.PROTEIN_EXP_KEY,
                protein_expression_obsm_key,
                colnames_uns_key=protein_names_uns_key,
                is_count_data=False,
            ),
        ]
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    @classmethod
    @setup_anndata_dsp.dedent
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        protein_layer: str | None = None,
        batch_key: str | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ):
        """%(summary_mdata)s.

        The RNA and protein modalities must hold the same cells in the same order; use
        :func:`sctranslator.pp.pair_modalities` on a mosaic. NaN in the protein matrix marks
        a protein not measured in a cell; a protein that is zero in every cell of a batch
        also counts as unmeasured there. Both are left out of the loss.

        Parameters
        ----------
        %(param_mdata)s
        rna_layer
            Layer of the RNA modality with raw counts; ``None`` for ``.X``.
        protein_layer
            Layer of the protein modality with raw counts; ``None`` for ``.X``.
        %(param_batch_key)s
        %(param_modalities)s Keys: ``rna_layer`` and ``protein_layer`` (required),
            ``batch_key`` (the top-level ``obs`` by default).

        Examples
        --------
        >>> mdata = sct.datasets.pbmc_cite_mini()
        >>> sct.SCTRANSLATOR.setup_mudata(
        ...     mdata, rna_layer="counts", protein_layer="counts", batch_key="batch",
        ...     modalities={"rna_layer": "rna", "protein_layer": "prot"},
        ... )
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if modalities is None:
            raise ValueError("`modalities` must be given, e.g. {'rna_layer': 'rna', ...}.")
        modalities = cls._create_modalities_attr_dict(modalities, setup_method_args)
        rna = get_modality(mdata, mod_key=modalities.rna_layer, what="rna_layer")
        protein = get_modality(mdata, mod_key=modalities.protein_layer, what="protein_layer")
        check_paired(mdata, mod_keys=[modalities.rna_layer, modalities.protein_layer])
        batch_obs = (
            mdata.obs if modalities.batch_key is None else mdata.mod[modalities.batch_key].obs
        )
        if batch_key is not None and batch_key not in batch_obs:
            raise KeyError(f"batch_key {batch_key!r} not found in the obs of the MuData.")
        validate_training_data(
            get_matrix(rna, layer=rna_layer, what=f"modality {modalities.rna_layer!r}"),
            rna.obs_names,
            rna.var_names,
            get_matrix(
                protein, layer=protein_layer, what=f"modality {modalities.protein_layer!r}"
            ),
            protein.var_names,
            missing_genes=allows_missing_genes(rna),
        )
        fields = [
            MuDataLayerField(
                REGISTRY_KEYS.X_KEY,
                rna_layer,
                mod_key=modalities.rna_layer,
                is_count_data=True,
                mod_required=True,
            ),
            MuDataCategoricalObsField(
                REGISTRY_KEYS.BATCH_KEY, batch_key, mod_key=modalities.batch_key
            ),
            MuDataLayerField(
                REGISTRY_KEYS.PROTEIN_EXP_KEY,
                protein_layer,
                mod_key=modalities.protein_layer,
                is_count_data=False,
                mod_required=True,
            ),
        ]
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)
