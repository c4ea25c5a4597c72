import numpy as np
import pytest

from sctranslator.data import Vocabulary, protein_aliases, resolve_protein_token


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
