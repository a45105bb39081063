"""The two unpaired domains: a set of renderings and a set of voxel grids, drawn from the dataset's models.

pairing="disjoint" (the default) splits the training models of each category in two halves with a seeded
permutation: renderings come only from one half, grids only from the other, so no model is ever seen in both
domains and the model can never learn from a pair. pairing="shuffled" draws both domains from all models,
each in its own random order: a rendering and the grid of the same model may meet in a batch, by chance only.

Batches are a pure function of (seed, step): the sampler holds no state to save, and a resumed run draws
exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset_tools.errors import VoxliftError

PAIRINGS = ("disjoint", "shuffled")


@dataclass
class Domains:
    image_models: np.ndarray  # dataset indices whose renderings form the 2D domain
    voxel_models: np.ndarray  # dataset indices whose grids form the 3D domain
    pairing: str


def split_domains(
    dataset,
    split: str = "train",
    pairing: str = "disjoint",
    seed: int = 0,
    categories: list[str] | None = None,
) -> Domains:
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; choose one of {PAIRINGS}")
    idx = dataset.indices(split, categories)
    if len(idx) < 2:
        raise VoxliftError(
            f"{dataset.path}: the {split!r} split has {len(idx)} models; unpaired training needs at least 2"
        )
    if pairing == "shuffled":
        return Domains(idx.copy(), idx.copy(), pairing)
    rng = np.random.default_rng([seed, 1])
    images, voxels = [], []
    by_cat: dict[str, list[int]] = {}
    for i in idx:  # per category, so that both domains hold chairs and tables alike
        by_cat.setdefault(dataset.models[i].category, []).append(int(i))
    for cat in sorted(by_cat):
        members = rng.permutation(np.array(by_cat[cat]))
        half = (len(members) + 1) // 2
        images += members[:half].tolist()
        voxels += members[half:].tolist()
    if not images or not voxels:
        raise VoxliftError(f"{dataset.path}: too few {split!r} models to split into two disjoint domains")
    return Domains(np.array(sorted(images)), np.array(sorted(voxels)), pairing)


def to_image_tensor(images_u8, image_size: int | None = None) -> torch.Tensor:
    """uint8 [B, S, S] -> float [B, 1, s, s] in [-1, 1], area-resized to image_size when given."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8)).float().unsqueeze(1) / 127.5 - 1
    if image_size is not None and x.shape[-1] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="area")
    return x


def to_voxel_tensor(voxels) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(voxels, dtype=np.float32))


def view_azimuths(dataset) -> np.ndarray:
    """float64 [N, V]: the azimuth of every (model, view), shared views or per-model cameras alike."""
    if dataset.views is not None:
        return np.broadcast_to(
            np.array([v.azimuth for v in dataset.views], np.float64), (len(dataset), dataset.views_per_model)
        )
    if len(dataset) == 0:
        return np.zeros((0, dataset.views_per_model))
    return np.asarray(dataset.cameras[:, :, 0], np.float64)


def _items(models: np.ndarray, views: np.ndarray) -> np.ndarray:
    """[(model, view)] for every model and view, as an int64 array [M * V, 2]."""
    return np.stack(np.meshgrid(models, views, indexing="ij"), -1).reshape(-1, 2).astype(np.int64)


class _Stream:
    """An endless stream of items: the domain in a fresh seeded permutation every epoch."""

    def __init__(self, items: np.ndarray, seed: int, stream: int):
        self.items, self.seed, self.stream = np.asarray(items), seed, stream
        self._perm: tuple[int, np.ndarray] | None = None

    def take(self, start: int, count: int) -> np.ndarray:
        n = len(self.items)
        out = []
        for j in range(count):
            epoch, pos = divmod(start + j, n)
            perm = self._perm  # one read: prefetching threads call take() at once
            if perm is None or perm[0] != epoch:
                perm = (epoch, np.random.default_rng([self.seed, self.stream, epoch]).permutation(n))
                self._perm = perm
            out.append(self.items[perm[1][pos]])
        return np.stack(out)


def viewer_frame_grids(dataset, items: np.ndarray, azimuths: np.ndarray) -> torch.Tensor:
    """Grids of items [(model, view)] turned into their view's frame (as the paired model's targets)."""
    from .data import to_viewer_frame

    grids = to_voxel_tensor(np.stack([np.asarray(dataset.voxels[m]) for m in items[:, 0]]))
    return to_viewer_frame(grids, azimuths[items[:, 0], items[:, 1]])


class UnpairedSampler:
    """Batches of (images [B, 1, s, s] in [-1, 1], their model indices, grids [B, R, R, R], their indices).

    Viewer-centred, like the paired model: a rendering from azimuth a belongs with its grid turned by a
    (data.to_viewer_frame), so each grid of the 3D domain is turned into the frame of a random view of the
    dataset. Then G_3D->2D always draws the view "from the front" and G_2D->3D needs no camera, whatever
    view an image comes from (the renderer's views share one elevation). `views` limits the views used.
    """

    def __init__(
        self,
        dataset,
        domains: Domains,
        batch_size: int,
        seed: int = 0,
        image_size: int | None = None,
        views: list[int] | None = None,
    ):
        v_all = dataset.views_per_model
        self.views = np.arange(v_all) if views is None else np.asarray(views, np.int64)
        if len(self.views) == 0 or self.views.min() < 0 or self.views.max() >= v_all:
            raise VoxliftError(
                f"{dataset.path}: views {views} out of range (the dataset has {v_all} per model)"
            )
        self.dataset, self.domains, self.batch_size = dataset, domains, batch_size
        self.image_size = image_size or dataset.image_size
        self.azimuths = view_azimuths(dataset)
        self._img_stream = _Stream(_items(domains.image_models, self.views), seed, 0)
        self._vox_stream = _Stream(_items(domains.voxel_models, self.views), seed, 1)

    def draw(self, draw_index: int) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray]:
        """The `draw_index`-th batch of the run (several draws per step when the critic trains n_critic times)."""
        b = self.batch_size
        im = self._img_stream.take(draw_index * b, b)
        vx = self._vox_stream.take(draw_index * b, b)
        images = to_image_tensor(
            np.stack([np.asarray(self.dataset.images[m, v]) for m, v in im]), self.image_size
        )
        # Binary again after the turn: a grid turned by 45 degrees is resampled (soft values), and the 3D critic
        # would tell real grids from the generator's binary (straight-through) ones by that softness alone.
        voxels = (viewer_frame_grids(self.dataset, vx, self.azimuths) > 0.5).float()
        return images, im[:, 0], voxels, vx[:, 0]

    def alpha(self, draw_index: int) -> torch.Tensor:
        """The alpha masks [B, S, S] in [0, 1] of the `draw_index`-th batch's renderings (the dataset's size)."""
        im = self._img_stream.take(draw_index * self.batch_size, self.batch_size)
        a = np.stack([np.asarray(self.dataset.alpha[m, v]) for m, v in im])
        return torch.from_numpy(a).float() / 255

    def voxel_occupancy(self, sample: int = 200) -> float:
        m = self.domains.voxel_models
        pick = m[np.linspace(0, len(m) - 1, min(sample, len(m))).astype(int)]
        return float(np.mean([np.asarray(self.dataset.voxels[i]).mean() for i in pick]))


def load_pairs(
    dataset,
    split: str,
    image_size: int | None = None,
    limit: int | None = None,
    views: list[int] | None = None,
    categories: list[str] | None = None,
):
    """Pairs for the paired protocol: (images [N, 1, s, s], viewer-frame grids [N, R, R, R], items [N, 2]) of
    the split's (model, view) items, `limit` of them spread evenly when given."""
    idx = dataset.indices(split, categories)
    if len(idx) == 0:
        raise VoxliftError(f"{dataset.path}: the {split!r} split is empty")
    items = _items(idx, np.arange(dataset.views_per_model) if views is None else np.asarray(views, np.int64))
    if limit is not None and limit < len(items):
        items = items[np.unique(np.linspace(0, len(items) - 1, limit).astype(int))]
    images = to_image_tensor(np.stack([np.asarray(dataset.images[m, v]) for m, v in items]), image_size)
    return images, viewer_frame_grids(dataset, items, view_azimuths(dataset)), items


class Prefetcher:
    """`draw(i)` as the sampler's, with the next `ahead` draws (i + stride, i + 2 stride, ...) already under way
    in background threads, so that a GPU does not wait for the CPU to read, resize and turn each batch (at
    batch 64 that is ~30 ms a draw, three draws a CycleGAN step; BENCHMARKS.md). A draw is a function of its
    index alone, so the batches are exactly those drawn without it."""

    def __init__(self, sampler: UnpairedSampler, stride: int = 1, ahead: int = 6, threads: int = 3):
        from concurrent.futures import ThreadPoolExecutor

        self.sampler, self.stride, self.ahead = sampler, stride, ahead
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="voxlift-draw")
        self._pending: dict[int, object] = {}

    def draw(self, index: int):
        for j in range(self.ahead + 1):
            i = index + j * self.stride
            if i not in self._pending:
                self._pending[i] = self._pool.submit(self.sampler.draw, i)
        for i in [i for i in self._pending if i < index]:  # a jump (never in training): drop the stale ones
            self._pending.pop(i).cancel()
        return self._pending.pop(index).result()

    def alpha(self, draw_index: int) -> torch.Tensor:
        return self.sampler.alpha(draw_index)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def unpaired_sampler(config, ds, ctx):
    """(domains, sampler, prefetcher) of a run's config (generators.UnpairedConfig): the two domains' batches;
    on CUDA drawn ahead by the CPU (the same batches either way)."""
    domains = split_domains(ds, "train", config.pairing, config.seed, config.categories)
    sampler = UnpairedSampler(ds, domains, config.batch_size, config.seed, config.input_size, config.views)
    if config.pos_weight is None:
        from .losses import positive_weight

        config.pos_weight = positive_weight(sampler.voxel_occupancy())
    prefetcher = Prefetcher(sampler, stride=ctx.world) if ctx.device.type == "cuda" else None
    return domains, sampler, prefetcher
