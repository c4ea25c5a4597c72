"""Saving and loading a model as plain data (see :mod:`._persistence`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

import numpy as np
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS

from sctranslator.components import component_state, load_component_state
from sctranslator.data import rna_modality

from ._model_utils import torch_device
from ._persistence import (
    COMPONENT_FILES,
    read_model,
    replace_folder,
    resolve_model_folder,
    write_model,
)


class SaveLoadMixin:
    """``save`` and ``load`` as safetensors weights and JSON settings."""

    # ------------------------------------------------------------------------ save/load
    def save(
        self,
        dir_path: str | os.PathLike,
        *,
        overwrite: bool = False,
        save_anndata: bool = False,
    ) -> None:
        """Save the model to the folder ``dir_path`` as plain data, atomically.

        The folder holds ``weights.safetensors`` (the module's tensors), one safetensors file
        per fitted component (``panel.safetensors``, ``mapping.safetensors``,
        ``calibration.safetensors``; none for an unfitted one), ``model.json`` (settings,
        registry, vocabulary, training history and model card, as JSON) and
        ``MODEL_CARD.md``; no pickled Python objects, so renaming a class never breaks a
        saved model. Everything is written to a temporary folder beside
        ``dir_path`` and renamed into place, so an interrupted save leaves no half-written
        model. Under DDP only the first process writes.

        Parameters
        ----------
        dir_path
            Target folder.
        overwrite
            Replace an existing folder.
        save_anndata
            Also save the registered data (``adata.h5ad`` or ``mdata.h5mu``).

        Examples
        --------
        >>> model.save("model_dir")
        >>> model = sct.SCTRANSLATOR.load("model_dir", adata=mdata)
        """
        if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
            return
        params = dict(self.init_params_["non_kwargs"])
        params.pop("vocabulary", None)
        attributes = {
            name: getattr(self, name, None)
            for name in (
                "is_trained_",
                "train_indices_",
                "validation_indices_",
                "test_indices_",
                "history_",
                "card_",
                "protein_reliability_",
                "fine_tuning_",
            )
        }
        settings = {
            "class": type(self).__name__,
            "init_params": params,
            "vocabulary": self.vocabulary,
            "registry": self.registry_,
            "var_names": {
                "genes": self._registered_names(REGISTRY_KEYS.X_KEY),
                "proteins": self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY),
            },
            "attributes": attributes,
        }

        if save_anndata and self.adata is None:
            raise ValueError(
                "The model has no AnnData to save (it was loaded without data, or trained on a "
                "cell store, which stays where it is); save with save_anndata=False."
            )

        def write(folder: Path) -> None:
            components = {name: component_state(getattr(self, name)) for name in COMPONENT_FILES}
            write_model(folder, self.module.state_dict(), components, settings, self.model_card())
            if save_anndata:
                name = "mdata.h5mu" if isinstance(self.adata, MuData) else "adata.h5ad"
                self.adata.write(folder / name)

        replace_folder(Path(dir_path), write, overwrite)

    @classmethod
    def load(
        cls,
        dir_path: str | os.PathLike,
        *,
        adata: AnnData | MuData | None = None,
        accelerator: str = "auto",
        device: int | str = "auto",
    ) -> Self:
        """Load a model saved by :meth:`save`, or a shipped reference by name.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`, or the name of a shipped reference
            (:func:`~sctranslator.model.shipped_references`, e.g. ``"pbmc"``).
        adata
            Data to register with the model (set up with the saved setup arguments); its RNA
            genes must be the saved ones, in the same order. ``None`` loads the model without
            data (predict from any RNA with :meth:`predict_protein`).
        accelerator
            ``"cpu"``, ``"gpu"`` or ``"auto"`` (a GPU when there is one).
        device
            GPU index, or ``"auto"``.

        Returns
        -------
        The trained model.

        Examples
        --------
        >>> model = sct.SCTRANSLATOR.load("model_dir")
        >>> reference = sct.SCTRANSLATOR.load("pbmc")
        """
        folder = resolve_model_folder(dir_path)
        target = torch_device(accelerator, device)
        state, components, settings = read_model(folder, target)
        if settings["class"] != cls.__name__:
            raise ValueError(f"{folder} holds a {settings['class']}, not a {cls.__name__}.")
        registry = settings["registry"]
        if adata is not None:
            genes = np.asarray(settings["var_names"]["genes"]).astype(str)
            given = np.asarray(rna_modality(adata, registry["setup_args"]).var_names).astype(str)
            if not np.array_equal(given, genes):
                raise ValueError(
                    f"The RNA genes of `adata` ({len(given)}) are not the {len(genes)} genes the "
                    "model was saved with, in the same order; select them with "
                    "`adata[:, genes]`, or load without data and predict from any genes."
                )
            setup = getattr(cls, registry["setup_method_name"])
            setup(adata, source_registry=registry, **registry["setup_args"])
        model = cls(
            adata, registry=registry, vocabulary=settings["vocabulary"], **settings["init_params"]
        )
        try:
            model.module.load_state_dict(state)
            for name, component in components.items():
                load_component_state(getattr(model, name), component)
        except RuntimeError as error:
            raise ValueError(
                f"The weights in {folder} do not fit the saved settings ({error}); save the "
                "model again."
            ) from error
        for name, value in settings["attributes"].items():
            if value is not None:
                setattr(model, name, value)
        model.to_device(target)
        model.module.eval()
        return model
