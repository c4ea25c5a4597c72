"""Draw the model diagram of the user guide into ``_static/model.svg``.

Run once after changing the model: ``python docs/make_model_diagram.py``. The SVG is committed,
so the docs build does not need to run this script.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

GENE, CELL, ENC, PROT, HEAD = "#cfe3f5", "#f9e0b8", "#d8ecd2", "#f5cfd9", "#e3dcf2"


def box(ax, x, y, w, h, text, color, size=9):
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color,
            edgecolor="#444444",
            linewidth=0.8,
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def arrow(ax, start, end, text=None, style="-|>", color="#333333"):
    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle=style, mutation_scale=10, linewidth=0.9, color=color
        )
    )
    if text:
        ax.text(
            (start[0] + end[0]) / 2 + 0.08,
            (start[1] + end[1]) / 2,
            text,
            fontsize=7.5,
            va="center",
            color="#333333",
        )


def main(path: Path) -> None:
    plt.rcParams["svg.hashsalt"] = "sctranslator"
    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.6)
    ax.axis("off")

    # Input: RNA of one cell.
    ax.text(0.1, 4.35, "RNA of a cell (any gene panel)", fontsize=9, weight="bold")
    genes = ["CD3E 2.1", "MS4A1 0.0", "CD14 3.4", "...", "LYZ 4.0"]
    for i, g in enumerate(genes):
        box(ax, 0.1, 3.55 - i * 0.62, 1.35, 0.45, g, GENE, 8)
    ax.text(
        0.1,
        0.25,
        "normalised (log1p CP10k);\nmost expressed max_genes kept",
        fontsize=7.5,
        color="#333333",
    )

    # Token embedding.
    box(
        ax,
        1.85,
        1.6,
        1.55,
        1.6,
        "gene tokens\n\nidentity embedding\n+\nvalue embedding\n(no position)",
        GENE,
        8,
    )
    for i in range(len(genes)):
        arrow(ax, (1.47, 3.77 - i * 0.62), (1.85, 2.4))

    # Cell token.
    box(
        ax,
        1.85,
        3.55,
        1.55,
        0.6,
        "cell token\n(weighted sum of\nidentities: PCA start)",
        CELL,
        7.5,
    )

    # Encoder: the cell token and latents read the gene tokens, then self-attend.
    box(
        ax,
        3.8,
        1.6,
        1.5,
        2.55,
        "encoder\n\ncell token + n_latents\nlatents read the\n"
        "gene tokens\n(cross-attention),\nthen self-attend\n\nn_encoder_layers",
        ENC,
        7.5,
    )
    arrow(ax, (3.4, 2.4), (3.8, 2.4))
    arrow(ax, (2.62, 3.2), (2.62, 3.55), "pool")
    arrow(ax, (3.4, 3.85), (3.8, 3.85))

    # Protein queries.
    ax.text(
        3.8, 0.02, "protein queries (any subset of the vocabulary)", fontsize=8.5, weight="bold"
    )
    for i, p in enumerate(["CD3", "CD19", "CD14", "HLA-DR"]):
        box(ax, 3.8 + i * 0.95, 0.3, 0.85, 0.5, p, PROT, 8)
    box(
        ax,
        5.95,
        1.6,
        1.6,
        2.55,
        "read-out\n\nqueries attend to\ncell token + latents\n"
        "(never to each other)\n\nquery = identity\n+ query vector",
        PROT,
        7.5,
    )
    arrow(ax, (5.3, 2.9), (5.95, 2.9))
    ax.text(5.62, 3.15, "keys,\nvalues", fontsize=7.5, ha="center")
    arrow(ax, (5.65, 0.82), (6.5, 1.6), "queries")

    # Linear read-out and output.
    box(ax, 7.95, 2.3, 1.1, 1.15, "dot product\nwith protein\nidentity\n+ batch, bias", HEAD, 7.5)
    arrow(ax, (7.55, 2.87), (7.95, 2.87))
    box(
        ax,
        7.75,
        0.6,
        2.15,
        1.35,
        "protein values\nstandardised per protein\nx std + mean\n= CLR scale",
        HEAD,
        8,
    )
    arrow(ax, (8.42, 2.3), (8.42, 1.95))
    ax.text(9.1, 2.87, "one value\nper query", fontsize=7.5, va="center")

    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


if __name__ == "__main__":
    main(Path(__file__).parent / "_static" / "model.svg")
