"""A distributed, resumable sampler: the epoch's order is a pure function of (seed, epoch).

Like :class:`torch.utils.data.DistributedSampler` (each rank takes every ``world``-th index of
one shared permutation, padded so ranks get equal counts), plus a start offset so a resumed run
continues at the exact sample where the checkpoint was taken, without reading the skipped ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Indices of this rank for the current epoch, from ``start`` on.

    Args:
        length: dataset size.
        rank, world: this process and the number of processes.
        seed: base seed of the shuffle.
        shuffle: permute per epoch (False: 0, 1, 2, ...).
    """

    def __init__(
        self, length: int, rank: int = 0, world: int = 1, seed: int = 0, shuffle: bool = True
    ) -> None:
        if length < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.length, self.rank, self.world = length, rank, world
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start = 0, 0
        self.per_rank = math.ceil(length / world)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch, and skip this rank's first ``start`` samples of it."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        """This rank's whole epoch."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        else:
            order = np.arange(self.length)
        total = self.per_rank * self.world
        if total > self.length:  # pad by wrapping, as DistributedSampler does
            order = np.concatenate([order, order[: total - self.length]])
        return order[self.rank : total : self.world].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start)
