import numpy as np
import pytest
import torch
from scvi import REGISTRY_KEYS

from sctranslator.components import PanelStatistics
from sctranslator.module import TranslatorModule
from sctranslator.nn import PROTEIN_NORMALIZATIONS, RNA_NORMALIZATIONS, TokenValueEmbedding
from sctranslator.train import MaskedPearson, NeighborTeacher, TranslatorTrainingPlan


@pytest.mark.parametrize("name", sorted(set(RNA_NORMALIZATIONS) | set(PROTEIN_NORMALIZATIONS)))
def test_constant_and_empty_rows_never_give_nan(name):
    normalize = {**RNA_NORMALIZATIONS, **PROTEIN_NORMALIZATIONS}[name]
    x = torch.tensor([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [1.0, 0.0, 3.0]])
    out = normalize(x)
    assert not torch.isnan(out).any()
    assert torch.equal(out[0], torch.zeros(3)) or name == "clr"


def test_clr_matches_muon_formula_and_keeps_nan():
    x = torch.tensor([[1.0, 3.0, np.nan, 10.0]])
    out = PROTEIN_NORMALIZATIONS["clr"](x)
    observed = np.array([1.0, 3.0, 10.0])
    expected = np.log1p(observed / np.exp(np.log1p(observed).mean()))
    np.testing.assert_allclose(out[0, [0, 1, 3]].numpy(), expected, rtol=1e-6)
    assert torch.isnan(out[0, 2])


def test_log1p_cp10k_matches_scanpy_definition():
    x = torch.tensor([[1.0, 3.0, 0.0]])
    np.testing.assert_allclose(
        RNA_NORMALIZATIONS["log1p_cp10k"](x).numpy(),
        np.log1p(np.array([[2500.0, 7500.0, 0]])),
        rtol=1e-6,
    )


def make_module(max_genes=1024, n_genes=40, **kwargs):
    torch.manual_seed(0)
    return TranslatorModule(
        n_tokens=60,
        gene_ids=torch.arange(n_genes),
        protein_ids=torch.arange(50, 55),
        n_hidden=16,
        n_heads=2,
        max_genes=max_genes,
        **kwargs,
    ).eval()


def test_context_limit_keeps_most_expressed_genes_whatever_their_order():
    module = make_module(max_genes=3)
    values = torch.tensor([[0.0, 5.0, 1.0, 9.0, 2.0]])
    ids, kept, present = module.select_genes(torch.tensor([10, 11, 12, 13, 14]), values)
    assert ids.tolist() == [[13, 11, 14]] and kept.tolist() == [[9.0, 5.0, 2.0]]
    assert present.all()
    order = torch.tensor([4, 2, 0, 3, 1])
    ids_p, kept_p, _ = module.select_genes(
        torch.tensor([10, 11, 12, 13, 14])[order], values[:, order]
    )
    assert ids_p.tolist() == ids.tolist() and kept_p.tolist() == kept.tolist()


def test_only_expressed_genes_are_tokens():
    module = make_module(max_genes=8)
    values = torch.tensor([[0.0, 5.0, torch.nan, 0.0], [1.0, 2.0, 3.0, 0.0]])
    ids, kept, present = module.select_genes(torch.tensor([10, 11, 12, 13]), values)
    assert ids.shape == (2, 3)  # the widest cell has three expressed genes
    assert present.tolist() == [[True, False, False], [True, True, True]]
    assert ids[0, 0] == 11 and kept[0].tolist() == [5.0, 0.0, 0.0]


def test_value_embedding_of_distinct_values_equals_embedding_every_token():
    embedding = TokenValueEmbedding(n_tokens=20, n_hidden=8)
    token_ids = torch.randint(0, 20, (5, 7))
    values = torch.poisson(torch.full((5, 7), 2.0)).log1p()  # repeats, as counts give
    tokens, pooled = embedding(token_ids, values)
    identity = embedding.identity(token_ids)
    every_token = identity + embedding.value(values.unsqueeze(-1))
    torch.testing.assert_close(tokens, every_token)
    torch.testing.assert_close(pooled, (identity * values.unsqueeze(-1)).sum(1))
    tokens.sum().backward()  # gradients reach the value network through the shared rows
    assert embedding.value[0].weight.grad.abs().sum() > 0
    values.requires_grad_(True)  # and the values themselves, for attributions
    tokens, _ = embedding(token_ids, values)
    torch.testing.assert_close(tokens, every_token)
    tokens.sum().backward()
    assert values.grad.abs().sum() > 0


def test_a_cell_is_predicted_the_same_alone_or_in_any_batch():
    module = make_module()
    x = torch.poisson(torch.full((6, 40), 0.3))
    x[0, :30] = 0.0  # a sparse cell next to denser ones: padded in the batch
    x[0, 30] = 4.0
    encoded = module.inference(x)
    together = module.generative(encoded["context"])["protein"]
    alone_encoded = module.inference(x[:1])
    alone = module.generative(alone_encoded["context"])["protein"]
    assert alone_encoded["tokens"].shape[1] < encoded["tokens"].shape[1]
    torch.testing.assert_close(alone[0], together[0], atol=1e-5, rtol=1e-5)


def test_loss_ignores_unmeasured_proteins():
    module = make_module()
    x = torch.poisson(torch.full((4, 40), 2.0))
    y = torch.poisson(torch.full((4, 5), 20.0))
    y[0, 1] = y[2, 3] = torch.nan
    tensors = {
        REGISTRY_KEYS.X_KEY: x,
        REGISTRY_KEYS.PROTEIN_EXP_KEY: y,
        REGISTRY_KEYS.BATCH_KEY: torch.zeros(4, 1),
    }
    inference = module.inference(x)
    generative = module.generative(inference["context"], tensors[REGISTRY_KEYS.BATCH_KEY])
    target = PanelStatistics(5, 1).standardize(y, tensors[REGISTRY_KEYS.BATCH_KEY])
    loss = module.loss(tensors, inference, generative, target=target)
    changed = {"protein": generative["protein"].clone()}
    changed["protein"][0, 1] += 100.0
    changed["protein"][2, 3] -= 100.0
    assert torch.isfinite(loss.loss)
    assert torch.allclose(module.loss(tensors, inference, changed, target=target).loss, loss.loss)
    changed["protein"][1, 1] += 10.0
    assert module.loss(tensors, inference, changed, target=target).loss > loss.loss
    with pytest.raises(ValueError, match="needs `target`"):
        module.loss(tensors, inference, generative)


def test_protein_queries_are_independent():
    module = make_module()
    encoded = module.inference(torch.poisson(torch.full((3, 40), 2.0)))
    context = encoded["context"]
    alone = module.generative(context, protein_ids=torch.tensor([52]))["protein"]
    together = module.generative(context, protein_ids=torch.tensor([50, 52, 54]))["protein"]
    torch.testing.assert_close(alone[:, 0], together[:, 1])


def test_masked_pearson_matches_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    y[:5, 0] = np.nan
    metric = MaskedPearson(3)
    metric.update(torch.tensor(x[:20]), torch.tensor(y[:20]))
    metric.update(torch.tensor(x[20:]), torch.tensor(y[20:]))
    expected = np.mean(
        [np.corrcoef(x[5:, 0], y[5:, 0])[0, 1]]
        + [np.corrcoef(x[:, j], y[:, j])[0, 1] for j in (1, 2)]
    )
    assert metric.compute().item() == pytest.approx(expected, abs=1e-5)


def test_gene_dropout_acts_in_training_only():
    module = make_module()
    module.gene_dropout = 0.5
    x = torch.poisson(torch.full((64, 40), 3.0))
    module.train()
    torch.manual_seed(0)
    kept = module.inference(x)["present"].float().mean()
    assert 0.35 < kept < 0.65
    module.eval()
    assert module.inference(x)["present"].float().mean() > 0.9
    torch.testing.assert_close(module.inference(x)["context"], module.inference(x)["context"])


def test_gene_attention_flows_only_to_present_genes():
    module = make_module()
    x = torch.poisson(torch.full((5, 40), 0.5))
    flow, tokens, present = module.gene_attention(x, module.gene_ids, torch.tensor([50, 51]))
    assert flow.shape == (5, 2, tokens.shape[1]) and tokens.shape == present.shape
    assert (flow >= 0).all() and (flow.sum(-1) <= 1 + 1e-5).all()
    assert (flow.sum(-1) > 0).all()  # some weight reaches genes, the rest stays on the cell token
    assert torch.all(flow.masked_select(~present.unsqueeze(1).expand_as(flow)) == 0)


def test_initialization_makes_the_cell_token_the_standardised_principal_components():
    module = make_module(n_genes=40)
    rng = np.random.default_rng(0)
    programme = rng.gamma(1.0, 1.0, (2, 40))  # two cell states: most variance on one axis
    x = torch.tensor(rng.poisson(programme[rng.integers(0, 2, 300)] * 3.0), dtype=torch.float32)
    before = module.embedding.identity.weight[40:].clone()
    module.initialize_from_data(x)
    assert bool(module.initialized)
    torch.testing.assert_close(module.embedding.identity.weight[40:], before)  # proteins untouched
    with torch.no_grad():
        values = module.normalize_rna(x)
        pooled = values @ module.embedding.identity.weight[:40]
        cell = pooled * module.cell_scale + module.cell_shift
    assert cell.mean(0).abs().max() < 1e-4
    assert float(cell.std(0).mean()) == pytest.approx(1.0, rel=1e-3)
    first_pc = np.linalg.svd((values - values.mean(0)).numpy(), full_matrices=False)[2][0]
    loading = module.embedding.identity.weight[:40].detach().numpy()
    assert abs(np.corrcoef(first_pc, loading[:, 0])[0, 1]) > 0.99


def test_training_targets_are_projected_on_the_protein_axes():
    module = make_module()
    panel = PanelStatistics(5, 1)
    plan = TranslatorTrainingPlan(module, panel=panel, protein_rank=1, target_smoothing=0.0)
    y = torch.poisson(torch.full((4, 5), 20.0))
    batch = {
        REGISTRY_KEYS.X_KEY: torch.poisson(torch.full((4, 40), 2.0)),
        REGISTRY_KEYS.PROTEIN_EXP_KEY: y,
        REGISTRY_KEYS.BATCH_KEY: torch.zeros(4, 1),
    }
    target = panel.standardize(y, batch[REGISTRY_KEYS.BATCH_KEY])
    torch.testing.assert_close(plan.training_target(batch), target)  # no axes fitted yet
    plan.protein_axes = torch.tensor([[1.0], [0.0], [0.0], [0.0], [0.0]])
    projected = torch.cat([target[:, :1], torch.zeros(4, 4)], dim=1)  # only the first axis
    torch.testing.assert_close(plan.training_target(batch), projected)


def _teacher_inputs(module, x, y, batch_index):
    rna = torch.nan_to_num(module.normalize_rna(x))
    return rna, PanelStatistics(y.shape[1], 1).standardize(y, batch_index)


def test_training_targets_are_blended_with_the_nearest_cells_targets():
    module = make_module()
    teacher = NeighborTeacher(smoothing=0.25, n_neighbors=2)
    rng = np.random.default_rng(0)
    programme = rng.gamma(1.0, 1.0, (2, 40)) * 5.0  # two well-separated cell states
    state = np.repeat([0, 1], 20)
    x = torch.tensor(rng.poisson(programme[state]), dtype=torch.float32)
    y = torch.tensor(rng.poisson(30.0 + 30.0 * state[:, None], (40, 5)), dtype=torch.float32)
    y[3, 1] = torch.nan  # unmeasured: stays NaN, and no neighbour's mean counts it
    batch_index = torch.zeros(40, 1)
    rna, target = _teacher_inputs(module, x, y, batch_index)
    assert torch.equal(teacher.smooth(rna, target).nan_to_num(), target.nan_to_num())
    teacher.fit(rna, target)
    assert teacher.coordinates.shape == (40, 40 + 5)  # RNA and protein components
    smoothed = teacher.smooth(rna, target)
    distances = torch.cdist(teacher.coordinates, teacher.coordinates)
    nearest = distances.topk(2, largest=False).indices
    assert (nearest[:, 0] == torch.arange(40)).all()  # each cell is its own nearest cell
    assert all(state[i] == state[j] for i, j in nearest.tolist())  # its neighbour: same state
    mean = torch.nanmean(target[nearest], dim=1)
    expected = torch.where(mean.isnan(), target, 0.75 * target + 0.25 * mean)
    torch.testing.assert_close(smoothed, expected, equal_nan=True)
    assert smoothed[3, 1].isnan() and int(smoothed.isnan().sum()) == 1
    tensors = {
        REGISTRY_KEYS.X_KEY: x,
        REGISTRY_KEYS.PROTEIN_EXP_KEY: y,
        REGISTRY_KEYS.BATCH_KEY: batch_index,
    }
    module.train()  # the module fits the targets it is given
    assert module.loss(tensors, {}, {"protein": target.nan_to_num()}, target=target).loss == 0
    assert module.loss(tensors, {}, {"protein": smoothed.nan_to_num()}, target=smoothed).loss == 0


def test_target_smoothing_is_checked():
    with pytest.raises(ValueError, match="target_smoothing must be in"):
        NeighborTeacher(smoothing=1.5)


def test_cells_without_measured_proteins_are_not_neighbours():
    module = make_module()
    teacher = NeighborTeacher(smoothing=0.5)
    x = torch.poisson(torch.full((20, 40), 2.0))
    y = torch.poisson(torch.full((20, 5), 20.0))
    y[:5] = torch.nan  # e.g. an RNA-only batch of a mosaic
    rna, target = _teacher_inputs(module, x, y, torch.zeros(20, 1))
    teacher.fit(rna, target)
    assert len(teacher.targets) == 15 and not teacher.targets.isnan().any()
    # 15 teacher cells allow 1 neighbour (5 %): each cell's own proteins, so nothing changes
    torch.testing.assert_close(teacher.smooth(rna, target), target, equal_nan=True)
    y[:19] = torch.nan
    rna, target = _teacher_inputs(module, x, y, torch.zeros(20, 1))
    teacher.fit(rna, target)  # one cell: no teacher
    assert not teacher.fitted
    assert torch.equal(teacher.smooth(rna, target).isnan(), target.isnan())
