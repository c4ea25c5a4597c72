"""Minibatches from a cell store: shuffled by chunks, split over processes, resumable."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import lightning.pytorch as pl
import numpy as np
import torch
from scvi import REGISTRY_KEYS

from ._store import CellStore


class StoreSampler:
    """The order in which one process visits its share of ``rows`` in each epoch.

    With ``shuffle``, the rows (sorted) are cut into chunks of ``chunk_size`` consecutive
    cells, the chunks are permuted with a generator seeded by ``(seed, epoch)``, the result
    is split into ``world_size`` equal parts, one per process, so no cell is visited twice
    in an epoch (the ``len(rows) % world_size`` cells left over change every epoch), and
    each window of ``window`` cells of a part is shuffled. The order depends only on the
    seed and the epoch, so a resumed epoch continues the same order. Without ``shuffle``,
    the rows are split in order and parts may differ by one cell.
    """

    def __init__(
        self,
        rows: np.ndarray,
        shuffle: bool,
        seed: int = 0,
        chunk_size: int = 64,
        window: int = 4096,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.rows = np.sort(np.asarray(rows, dtype=np.int64))
        self.shuffle, self.seed, self.chunk_size, self.window = shuffle, seed, chunk_size, window
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (Lightning calls this at every epoch start)."""
        self.epoch = epoch

    def order(self) -> np.ndarray:
        """Return this process's rows in this epoch's order."""
        if not self.shuffle:
            return np.array_split(self.rows, self.world_size)[self.rank]
        generator = np.random.default_rng([self.seed, self.epoch])
        chunks = np.array_split(self.rows, max(1, -(-len(self.rows) // self.chunk_size)))
        order = np.concatenate([chunks[i] for i in generator.permutation(len(chunks))])
        share = len(order) // self.world_size
        order = order[self.rank * share : (self.rank + 1) * share]
        for start in range(0, len(order), self.window):
            order[start : start + self.window] = generator.permutation(
                order[start : start + self.window]
            )
        return order

    def __len__(self) -> int:
        if self.shuffle:
            return len(self.rows) // self.world_size
        return len(np.array_split(self.rows, self.world_size)[self.rank])


def read_minibatches(
    store: CellStore,
    rows: np.ndarray,
    batch_size: int,
    block_size: int = 4096,
    proteins: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield minibatches of ``rows`` in order, keyed like scvi-tools' registered fields.

    ``X`` (RNA), ``proteins`` (unless ``proteins=False``) with NaN where unmeasured, and
    ``batch`` codes ``(cells, 1)``. Cells are read ``block_size`` at a time (one TileDB read,
    fast for runs of consecutive cells); a background thread reads the next block meanwhile.
    """
    block_size = max(batch_size, block_size // batch_size * batch_size)
    blocks = [rows[s : s + block_size] for s in range(0, len(rows), block_size)]

    def read(cells: np.ndarray):
        return store.read(cells, proteins=proteins)

    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = [reader.submit(read, cells) for cells in blocks[:1]]
        for i, cells in enumerate(blocks):
            block = pending.pop().result()
            if i + 1 < len(blocks):
                pending.append(reader.submit(read, blocks[i + 1]))
            for first in range(0, len(cells), batch_size):
                values = block.dense(slice(first, first + batch_size))
                out = {REGISTRY_KEYS.X_KEY: values["X"]}
                if proteins:
                    out[REGISTRY_KEYS.PROTEIN_EXP_KEY] = values["proteins"]
                out[REGISTRY_KEYS.BATCH_KEY] = values["batch"][:, None]
                yield out


class StoreLoader:
    """Iterate over minibatches of ``{"X", "proteins", "batch"}`` tensors read from a store.

    Cells are read in the sampler's order by :func:`read_minibatches` (blocks of
    ``block_size`` cells, the next read while the current one is trained on), with NaN for
    unmeasured genes and proteins. ``state_dict``/``load_state_dict`` record
    the minibatches trained on in the current epoch, so that Lightning resumes a checkpoint
    taken mid-epoch where it stopped.
    Like a :class:`~torch.utils.data.DataLoader`, it has a ``sampler`` (Lightning sets its
    epoch) and no ``batch_sampler``.
    """

    batch_sampler = None

    def __init__(
        self,
        store: CellStore,
        sampler: StoreSampler,
        batch_size: int = 128,
        block_size: int = 4096,
    ):
        self.store, self.sampler = store, sampler
        self.batch_size, self.block_size = batch_size, block_size
        self.consumed = 0
        self._resume: dict | None = None

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        skip = 0
        if self._resume is not None and self._resume["epoch"] == self.sampler.epoch:
            skip = self._resume["consumed"]
        self._resume = None
        self.consumed = skip
        order = self.sampler.order()[skip * self.batch_size :]
        for values in read_minibatches(self.store, order, self.batch_size, self.block_size):
            yield {key: torch.from_numpy(value) for key, value in values.items()}

    def state_dict(self) -> dict:
        """Return the epoch and the number of its minibatches trained on."""
        return {"epoch": self.sampler.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        """Skip the minibatches of ``state`` when its epoch is iterated next."""
        self._resume = dict(state)


class StoreDataModule(pl.LightningDataModule):
    """Training and validation cells of a :class:`CellStore` for Lightning.

    The counterpart of scvi-tools' :class:`~scvi.dataloaders.DataSplitter` for a store: a
    seeded split of the cells into training and validation (``train_idx``, ``val_idx``),
    and loaders that read them from disk. Under DDP every process trains on its own equal
    share of each epoch's training cells and validates on its share of the validation cells.

    Parameters
    ----------
    store
        The cells.
    train_size
        Fraction of cells for training.
    validation_size
        Fraction for validation; ``1 - train_size`` by default.
    batch_size
        Cells per minibatch.
    seed
        Seed of the split and of the shuffling.
    chunk_size
        Consecutive cells kept together when shuffling (larger: faster reads, coarser
        shuffling).
    block_size
        Cells per read.
    """

    def __init__(
        self,
        store: CellStore,
        train_size: float = 0.9,
        validation_size: float | None = None,
        batch_size: int = 128,
        seed: int = 0,
        chunk_size: int = 64,
        block_size: int = 4096,
    ):
        super().__init__()
        if not 0 < train_size <= 1:
            raise ValueError(f"train_size must be in (0, 1]; got {train_size}.")
        if validation_size is not None and (
            validation_size < 0 or train_size + validation_size > 1 + 1e-9
        ):
            raise ValueError("train_size + validation_size must not exceed 1.")
        self.store, self.batch_size, self.seed = store, batch_size, seed
        self.chunk_size, self.block_size = chunk_size, block_size
        permutation = np.random.default_rng(seed).permutation(store.n_obs)
        n_train = int(np.ceil(train_size * store.n_obs))
        n_val = store.n_obs - n_train  # as scvi-tools: the rest validates by default
        if validation_size is not None:
            n_val = min(int(np.floor(validation_size * store.n_obs)), n_val)
        self.train_idx = np.sort(permutation[:n_train])
        self.val_idx = np.sort(permutation[n_train : n_train + n_val])
        self.test_idx = np.sort(permutation[n_train + n_val :])
        self.n_train, self.n_val = len(self.train_idx), len(self.val_idx)
        self._consumed_by: StoreLoader | None = None

    def _loader(self, rows: np.ndarray, shuffle: bool) -> StoreLoader:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = StoreSampler(
            rows, shuffle, self.seed, self.chunk_size, self.block_size, rank, world
        )
        return StoreLoader(self.store, sampler, self.batch_size, self.block_size)

    def train_dataloader(self) -> StoreLoader:
        """Shuffled training cells of this process."""
        self._consumed_by = self._loader(self.train_idx, shuffle=True)
        return self._consumed_by

    def val_dataloader(self) -> StoreLoader | list:
        """Return the validation cells of this process, in store order."""
        world = 1 if self.trainer is None else self.trainer.world_size
        if 0 < self.n_val < world:  # a process without cells would hang the others
            raise ValueError(
                f"{self.n_val} validation cells for {world} processes; raise validation_size "
                "or pass train_size=1.0."
            )
        return self._loader(self.val_idx, shuffle=False) if self.n_val else []

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """Count the training minibatches as they reach the model (not as they are prefetched)."""
        if self.trainer is not None and self.trainer.training and self._consumed_by is not None:
            self._consumed_by.consumed += 1
        return batch
