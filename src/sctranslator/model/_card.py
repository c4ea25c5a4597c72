"""The model card: what a model was trained on, how well it predicts, and what it is for."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

CARD_FIELDS = ("training_data", "licence", "intended_use", "limits")
# Antibodies with no target (isotype controls) measure background only.
_CONTROL = re.compile(r"(igg|isotype|control|ctrl)", re.I)


def held_out_pearson(prediction: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Per-column Pearson over the rows where ``measured`` is not NaN; NaN when undefined."""
    seen = ~np.isnan(measured)
    count = seen.sum(0)
    p = np.where(seen, prediction, 0.0)
    m = np.where(seen, measured, 0.0)
    mean_p = p.sum(0) / np.maximum(count, 1)
    mean_m = m.sum(0) / np.maximum(count, 1)
    dp = np.where(seen, prediction - mean_p, 0.0)
    dm = np.where(seen, measured - mean_m, 0.0)
    denominator = np.sqrt((dp**2).sum(0) * (dm**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (dp * dm).sum(0) / denominator
    return np.where((count >= 3) & (denominator > 0), r, np.nan)


def noise_flags(names: pd.Index, fitted_std: np.ndarray, measured: np.ndarray) -> pd.Series:
    """Why a protein behaves like noise: an isotype control, or no variation in training."""
    flags = pd.Series("", index=names, dtype=object)
    flags[[bool(_CONTROL.search(str(n))) for n in names]] = "isotype control"
    flags[~measured] = "never measured in training"
    flags[measured & (fitted_std == 1.0)] = "constant in training"
    return flags


def render_card(
    title: str,
    fields: dict,
    summary: str,
    genes: np.ndarray,
    proteins: pd.DataFrame,
    normalizations: dict[str, str],
) -> str:
    """Markdown text of a model card.

    ``proteins`` is indexed by protein name with columns ``token``, ``reliability`` (held-out
    Pearson) and ``flag``.
    """

    def field(name: str) -> str:
        value = fields.get(name)
        return value if value else "not recorded (set it with `model.set_model_card(...)`)"

    scored = proteins["reliability"].dropna()
    lines = [
        f"# Model card: {title}",
        "",
        f"- **Model**: {summary}",
        f"- **Training data**: {field('training_data')}",
        f"- **Licence of the training data**: {field('licence')}",
        f"- **Intended use**: {field('intended_use')}",
        f"- **Limits**: {field('limits')}",
        f"- **Normalisation**: RNA {normalizations['rna']}, proteins "
        f"{normalizations['protein']}; predictions are on the protein scale.",
        f"- **Genes** ({len(genes)}): {', '.join(map(str, genes[:20]))}"
        + (", ..." if len(genes) > 20 else ""),
        "",
        "## Proteins and their held-out Pearson",
        "",
    ]
    if len(scored):
        lines.append(
            f"Pearson correlation on cells held out from training (validation cells), per "
            f"protein: median {scored.median():.2f} over {len(scored)} proteins. It ranks "
            "proteins by how far their predictions can be trusted; on another lab's cells "
            "expect lower values."
        )
    else:
        lines.append("No held-out cells were scored (trained with `train_size=1.0`).")
    lines += ["", "| protein | token | held-out Pearson | note |", "|---|---|---|---|"]
    for name, row in proteins.sort_values("reliability", ascending=False).iterrows():
        value = "" if pd.isna(row["reliability"]) else f"{row['reliability']:.2f}"
        lines.append(f"| {name} | {row['token']} | {value} | {row['flag']} |")
    return "\n".join(lines) + "\n"
