import pickle
from pathlib import Path

import numpy as np
import pytest

import sctranslator as sct
from sctranslator.data import (
    Vocabulary,
    gene_aliases,
    protein_aliases,
    protein_coding_genes,
    resolve_protein_token,
)

TENX = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "tenx_tiny_rna_adt"
    / "filtered_feature_bc_matrix"
)


def test_lookup_is_case_insensitive_and_reports_unknown():
    vocab = Vocabulary(["CD3E", "CD4", "MS4A1"])
    np.testing.assert_array_equal(vocab.lookup_genes(["cd4", "XIST", "Cd3e"]), [1, -1, 0])


def test_tokens_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["CD4", "cd4"])


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("cd3.1", "CD3E"),
        ("CD3-2", "CD3E"),
        ("CD3_TotalSeqB", "CD3E"),
        ("CD20", "MS4A1"),
        ("PD-1", "PDCD1"),
        ("hla.dr", "HLA-DR"),
        ("CD45RA", "CD45RA"),
        ("tcrab", "TCRab"),
        ("CD16", "FCGR3A"),
        ("not-an-antibody", "not-an-antibody"),
    ],
)
def test_antibody_names_resolve_to_tokens(name, token):
    assert resolve_protein_token(name) == token


def test_every_pbmc_antibody_has_a_token_from_the_table(pbmc):
    tokens = set(protein_aliases()["token"])
    assert set(pbmc["prot"].var["token"]) <= tokens


def test_vocabulary_from_panels_merges_clones_and_genes():
    vocab = Vocabulary.from_panels(["CD4", "CD3E"], ["CD4-1", "CD4-2", "CD3-1", "HLA-DR"])
    assert vocab.tokens == ["CD4", "CD3E", "HLA-DR"]
    np.testing.assert_array_equal(vocab.lookup_proteins(["CD4-2", "CD3-1", "HLA-DR"]), [0, 1, 2])


def test_previous_gene_symbols_resolve_but_never_shadow_an_exact_token():
    vocab = Vocabulary(["SEPTIN7", "VSIR", "CD4"])
    np.testing.assert_array_equal(
        vocab.lookup_genes(["SEPT7", "c10orf54", "sept7", "NOTAGENE"]), [0, 1, 0, -1]
    )
    both = Vocabulary(["SEPT7", "SEPTIN7"])
    np.testing.assert_array_equal(both.lookup_genes(["SEPT7", "SEPTIN7"]), [0, 1])
    assert gene_aliases()["MARCH1"] == "MARCHF1"
    # an alias of an existing token is not a new token
    assert vocab.extend(["SEPT7", "XIST"]).tokens == ["SEPTIN7", "VSIR", "CD4", "XIST"]


def test_ensembl_ids_from_a_var_column_of_real_10x_data():
    import pandas as pd

    features = TENX / "features.tsv.gz"
    if not features.exists():
        pytest.skip(f"{features} not available")
    table = pd.read_csv(features, sep="\t", header=None, names=["gene_ids", "symbol", "type"])
    var = table[table["type"] == "Gene Expression"].set_index("symbol")
    var = var[~var.index.duplicated()]
    vocab = Vocabulary(list(var.index)).with_ensembl_from(var)
    ids = var["gene_ids"].to_numpy()
    np.testing.assert_array_equal(vocab.lookup_genes(ids), np.arange(len(var)))
    versioned = [f"{i.lower()}.7" for i in ids[:3]]
    np.testing.assert_array_equal(vocab.lookup_genes(versioned), [0, 1, 2])
    assert vocab.lookup_genes(["ENSG00000000000"])[0] == -1
    assert Vocabulary(list(var.index)).lookup_genes(ids[:1])[0] == -1  # not recorded: unknown
    restored = pickle.loads(pickle.dumps(vocab))
    assert restored == vocab and restored.ensembl == vocab.ensembl


def test_every_pbmc_source_antibody_name_maps_through_the_table(pbmc):
    import anndata as ad

    raw = ad.AnnData(var=pbmc["prot"].var.set_index("source_name"))
    table = sct.pp.map_protein_names(raw)
    # the two names the table leaves out on purpose as ambiguous (see protein_aliases.tsv)
    unmapped = table.index[table["source"] == "unmapped"]
    assert sorted(unmapped) == ["cadherin", "folate"]
    mapped = table.drop(unmapped)
    np.testing.assert_array_equal(
        mapped["token"], pbmc["prot"].var.set_index("source_name").loc[mapped.index, "token"]
    )
    assert table.loc["cd45ra", "genes"] == "PTPRC"
    assert table.loc["tcrab", "genes"] == "TRAC;TRBC1;TRBC2"
    assert table.loc["cd3.1", "token"] == "CD3E"


def test_map_protein_names_reports_what_did_not_map(caplog):
    import anndata as ad
    import pandas as pd

    names = ["CD3_TotalSeqB", "PD-1", "FOXP3", "Mystery-42"]
    panel = ad.AnnData(var=pd.DataFrame(index=names))
    vocab = Vocabulary(["CD3E", "FOXP3"])
    with caplog.at_level("WARNING"):
        table = sct.pp.map_protein_names(panel, vocabulary=vocab)
    assert table["source"].tolist() == [
        "antibody table",
        "antibody table",
        "gene symbol",
        "unmapped",
    ]
    assert table["token"].tolist() == ["CD3E", "PDCD1", "FOXP3", "Mystery-42"]
    np.testing.assert_array_equal(table["token_id"], [0, -1, 1, -1])
    assert "Mystery-42" in caplog.text
    assert list(panel.var_names) == names  # input unchanged


def test_protein_coding_genes():
    assert protein_coding_genes("CD45RO") == ["PTPRC"]
    assert protein_coding_genes("HLA-DR") == sorted(
        protein_aliases().loc["HLA-DR", "genes"].split(";")
    )
    assert protein_coding_genes("CD15") == []
    assert protein_coding_genes("FOXP3") == ["FOXP3"]
