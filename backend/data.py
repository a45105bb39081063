"""The data pipeline of the kinds trained on renderings (paired, mask, template): memory-mapped views, a
resumable sampler, and batch augmentation (users' pictures made from renderings: backgrounds, framing, masks).

Work is split so that the loader stays cheap (it must never limit training):

* `ViewDataset` (in DataLoader workers) only copies one view's uint8 image and alpha and the model's voxel
  bytes out of the memory-mapped dataset: nothing is loaded whole, nothing is decoded.
* `Augment` (in the training step, on the training device) composites random backgrounds through alpha,
  shifts and scales the image, and rotates the voxel grid into the frame of the sampled view. Its randomness
  comes from a generator seeded by (seed, step), so a resumed run draws exactly what the killed one would have.

Frames. The object frame is the dataset's canonical frame (Z up, front towards -Y). A view at azimuth `az`
sees the object exactly as a camera at azimuth 0 (same elevation and distance) sees the object turned by
-az about Z. The viewer-centred grid of that view is therefore

    G_view(p) = G_object(Rz(az) p)        (Rz counter-clockwise seen from above, p a point in [-0.5, 0.5]^3)

and `world_to_pixel(view) @ Rz(az)` projects the viewer-centred grid onto that view's image. Multiples of
90 degrees are exact index permutations (torch.rot90); other angles are resampled trilinearly, so the target
becomes soft (fractional occupancy) where voxels straddle, and corners that leave the cube are cut off.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset_tools.dataset import Dataset, open_dataset
from .compositing import MaskErrors, PictureConfig

# ---------------------------------------------------------------------------------------------- rotation


def rotation_z(degrees: float) -> np.ndarray:
    """4x4 rotation about +Z by `degrees`, counter-clockwise seen from above."""
    a = math.radians(degrees)
    m = np.eye(4)
    m[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    return m


def _quarter_turns(angle: float) -> int | None:
    k = angle / 90.0
    return round(k) % 4 if abs(k - round(k)) < 1e-6 else None


def resample_z(grids: torch.Tensor, angles: torch.Tensor | np.ndarray | list) -> torch.Tensor:
    """out[b](p) = grids[b](Rz(angles[b]) p) for float grids [B, R, R, R] indexed [x, y, z]; angles in degrees.

    Exact for multiples of 90 degrees, trilinear otherwise (zeros outside the cube)."""
    angles = np.array(angles.cpu().numpy() if torch.is_tensor(angles) else angles, dtype=np.float64).reshape(
        -1
    )
    out = torch.empty_like(grids)
    for angle in np.unique(angles):
        sel = torch.as_tensor(np.nonzero(angles == angle)[0], device=grids.device)
        g = grids.index_select(0, sel)
        k = _quarter_turns(float(angle))
        if k is not None:
            # Rz(90) takes (x, y) to (-y, x): out[i, j] = g[R-1-j, i], which is rot90 from y towards x.
            out[sel] = torch.rot90(g, k, dims=(2, 1)) if k else g
            continue
        out[sel] = _resample_trilinear(g, float(angle))
    return out


_GRIDS: dict = {}  # (angle, R, device, dtype) -> sampling grid; a training run sees only a few angles


def _resample_trilinear(g: torch.Tensor, angle: float) -> torch.Tensor:
    b, r = g.shape[0], g.shape[1]
    key = (angle, r, str(g.device), g.dtype)
    grid = _GRIDS.get(key)  # one read: the unpaired Prefetcher's threads turn grids at once
    if grid is None:
        if len(_GRIDS) > 64:  # per-model random views (3D-R2N2): do not grow without bound
            _GRIDS.clear()
        grid = _GRIDS[key] = _sampling_grid(angle, r, g.device, g.dtype)
    return F.grid_sample(
        g.unsqueeze(1),
        grid.expand(b, -1, -1, -1, -1),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    ).squeeze(1)


def _sampling_grid(angle: float, r: int, device, dtype) -> torch.Tensor:
    # With align_corners=False the normalised coordinate of a voxel centre is exactly 2 * its world coordinate,
    # so rotating normalised coordinates rotates world points about the grid's centre (the origin).
    c = (torch.arange(r, device=device, dtype=torch.float64) + 0.5) / r * 2 - 1
    x, y, z = torch.meshgrid(c, c, c, indexing="ij")
    a = math.radians(angle)
    xs = math.cos(a) * x - math.sin(a) * y
    ys = math.sin(a) * x + math.cos(a) * y
    # grid_sample's last axis is (W, H, D) = (z, y, x) for an input laid out [B, C, D=x, H=y, W=z].
    return torch.stack([z, ys, xs], dim=-1).unsqueeze(0).to(dtype)


def to_viewer_frame(grids: torch.Tensor, azimuths) -> torch.Tensor:
    """Object-frame grids [B, R, R, R] -> the frame of views at `azimuths` (degrees): as seen from azimuth 0."""
    return resample_z(grids, azimuths)


def to_object_frame_torch(grids: torch.Tensor, azimuths) -> torch.Tensor:
    """The inverse of to_viewer_frame: G_object(q) = G_view(Rz(-az) q)."""
    az = azimuths.cpu().numpy() if torch.is_tensor(azimuths) else azimuths
    return resample_z(grids, -np.array(az, dtype=np.float64))


# ---------------------------------------------------------------------------------------------- dataset


class ViewDataset(torch.utils.data.Dataset):
    """One item per (model, view) of the chosen models: uint8 image and alpha, voxel bytes, the view's angles.

    The memory maps are opened lazily in each process (a worker gets the path, not a copy of the arrays)."""

    def __init__(self, path: str | os.PathLike, models: np.ndarray, views: list[int] | None = None):
        self.path = str(path)
        self.models = np.asarray(models, dtype=np.int64)
        ds = open_dataset(self.path)
        self.views_per_model = ds.views_per_model
        self.view_ids = np.arange(ds.views_per_model) if views is None else np.asarray(views, dtype=np.int64)
        # Angles of every (model, view), small: [N, V]; per-model cameras (3D-R2N2) included.
        if ds.views is not None:
            az = np.array([v.azimuth for v in ds.views])
            el = np.array([v.elevation for v in ds.views])
            self.azimuth = np.broadcast_to(az, (len(ds), len(az)))
            self.elevation = np.broadcast_to(el, (len(ds), len(el)))
        else:
            self.azimuth = np.asarray(ds.cameras[:, :, 0]) if len(ds) else np.zeros((0, ds.views_per_model))
            self.elevation = np.asarray(ds.cameras[:, :, 1]) if len(ds) else np.zeros((0, ds.views_per_model))
        self._ds: Dataset | None = None
        self._pid = None

    @property
    def ds(self) -> Dataset:
        if self._ds is None or self._pid != os.getpid():
            self._ds, self._pid = open_dataset(self.path), os.getpid()
        return self._ds

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_ds"] = None  # never pickle the memory maps into workers
        return state

    def __len__(self) -> int:
        return len(self.models) * len(self.view_ids)

    def locate(self, item: int) -> tuple[int, int]:
        return int(self.models[item // len(self.view_ids)]), int(self.view_ids[item % len(self.view_ids)])

    def __getitem__(self, item: int) -> dict:
        m, v = self.locate(item)
        ds = self.ds
        return {
            "image": torch.from_numpy(np.array(ds.images[m, v])),
            "alpha": torch.from_numpy(np.array(ds.alpha[m, v])),
            "voxels": torch.from_numpy(np.array(ds.voxels[m]).view(np.uint8)),
            "azimuth": float(self.azimuth[m, v]),
            "elevation": float(self.elevation[m, v]),
            "model": m,
            "view": v,
        }


class StepSampler(torch.utils.data.Sampler):
    """An endless, resumable stream of item indices: epoch e is DistributedSampler's shuffle for epoch e.

    `start` is how many items this rank has already consumed (step * batch size), so a resumed run continues
    with the very items the killed run would have drawn next."""

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.size, self.seed, self.start, self.rank, self.world = size, seed, start, rank, world

    def __iter__(self):
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(
            range(self.size),
            num_replicas=self.world,
            rank=self.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=False,
        )
        per_epoch = len(sampler)
        epoch, skip = divmod(self.start, per_epoch)
        while True:
            sampler.set_epoch(epoch)
            order = list(sampler)
            yield from order[skip:]
            skip, epoch = 0, epoch + 1


def make_loader(
    dataset: ViewDataset,
    batch_size: int,
    *,
    seed: int = 0,
    start_step: int = 0,
    rank: int = 0,
    world: int = 1,
    workers: int = 1,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    sampler = StepSampler(len(dataset), seed, start_step * batch_size, rank, world)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


# ---------------------------------------------------------------------------------------------- augmentation


MASK_STREAM = 7919  # the mask pictures' draws are their own stream


def _draw_seed(seed: int, step: int, stream: int = 0) -> int:
    """The generator seed of a step's draws: a function of (seed, step, stream) alone, the same in any process."""
    return (seed * 1_000_003 + step * 65_537 + stream) % (2**63)


@dataclass
class AugmentConfig:
    viewer_centred: bool = True
    background: float = 1.0  # the renderer's background level in [0, 1] (measured from the dataset)
    # "bbox": every picture framed by its object's bounding box (longest side `fill`, centred), as users'
    # pictures are framed (framing.py), so training and use see the same; "render": as the renderer framed it
    framing: str = "render"
    fill: float = 0.75
    pictures: bool = (
        True  # new backgrounds, exposure, blur and noise (compositing.py); False: renderings as they are
    )
    shift: float = 0.05  # largest shift, as a share of the image side
    scale: float = 0.08  # largest relative change of size
    picture: PictureConfig = field(default_factory=PictureConfig)
    mask_errors: MaskErrors = field(default_factory=MaskErrors)
    bank: str | None = None  # background bank PNG (None: the shipped one; "none": no photographs)
    # the mask model's pictures: the object anywhere and at any size, as in a user's photo before framing
    mask_scale: tuple[float, float] = (0.45, 1.15)
    mask_shift: float = 0.3


def resize_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """Network input [B, 1, S, S] -> [B, 1, size, size] (area averaging when shrinking), in training and in use."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    return torch.nn.functional.interpolate(x, size=(size, size), mode=mode)


class Augment:
    """Turns a loader batch into (input [B, 1, S, S], target [B, R, R, R] float) on `device`, and makes the
    mask model's pictures (`mask_pictures`)."""

    def __init__(self, config: AugmentConfig, seed: int = 0):
        self.config, self.seed = config, seed
        self.bank = None
        if config.pictures and config.bank != "none":
            from .compositing import load_bank

            self.bank = load_bank(config.bank)

    def _images(self, batch: dict, device, size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        img = batch["image"].to(device, non_blocking=True).float() / 255.0
        alpha = batch["alpha"].to(device, non_blocking=True).float() / 255.0
        if size is not None and size < img.shape[-1]:
            both = F.interpolate(torch.stack([img, alpha], 1), size=(size, size), mode="area")
            img, alpha = both[:, 0], both[:, 1]
        return img, alpha

    def __call__(
        self,
        batch: dict,
        device: torch.device,
        step: int | None = None,
        train: bool = True,
        size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`size`: the network's input size; larger images are shrunk first (area), so the warps and
        backgrounds work on the pixels the network sees (4x fewer at 128 -> 64 px)."""
        cfg = self.config
        img, alpha = self._images(batch, device, size)
        vox = batch["voxels"].to(device, non_blocking=True).float()
        target = to_viewer_frame(vox, batch["azimuth"]) if cfg.viewer_centred else vox
        b = img.shape[0]
        framed = cfg.framing == "bbox"
        if framed:
            from .compositing import bbox_framing

            scale0, shift0 = bbox_framing(alpha, cfg.fill)
        if not train:
            if framed:
                from .compositing import warp

                img = warp(img, alpha, cfg.background, scale0, shift0)[0]
            return (img * 2 - 1).unsqueeze(1), target
        gen = torch.Generator().manual_seed(_draw_seed(self.seed, step))
        if cfg.pictures:
            img, alpha = self._as_found(img, alpha, gen)
            if framed:  # framed by the mask found, as at use
                from .compositing import bbox_framing

                scale0, shift0 = bbox_framing(alpha, cfg.fill)
        jitter = 1 + (torch.rand(b, generator=gen) * 2 - 1) * cfg.scale
        shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * cfg.shift
        scale = jitter * scale0 if framed else jitter
        if framed:
            shift = shift + jitter[:, None] * shift0
        from .compositing import warp

        x = warp(img, alpha, cfg.background, scale, shift)[0]
        return (x * 2 - 1).unsqueeze(1), target

    def mask_pictures(self, batch: dict, device, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The mask model's training pictures, size x size: the object anywhere and at any size on a new
        background, as in a user's photo before it is framed: (pictures [B, 1, s, s] in [-1, 1], alpha)."""
        cfg = self.config
        img, alpha = self._images(batch, device, size)
        gen = torch.Generator().manual_seed(_draw_seed(self.seed, step, MASK_STREAM))
        b = img.shape[0]
        lo, hi = cfg.mask_scale
        scale = lo + (hi - lo) * torch.rand(b, generator=gen)
        shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * cfg.mask_shift
        pictures, mask = self._picture(img, alpha, scale, shift, gen)
        return (pictures * 2 - 1).unsqueeze(1), mask.unsqueeze(1)

    def _as_found(self, img, alpha, gen):
        """What the network sees at use, made from a rendering: a user's picture of it (compositing.picture),
        cut out with the mask that inference would find (errors and all) and put on the training background."""
        from .compositing import found_mask, picture

        cfg = self.config
        pic, _ = picture(img, alpha, cfg.background, None, None, cfg.picture, gen, self.bank)
        found = found_mask(alpha, cfg.mask_errors, gen)
        return pic * found + cfg.background * (1 - found), found

    def _picture(self, img, alpha, scale, shift, gen):
        """The mask model's pictures: the object moved and scaled, on a new background."""
        from .compositing import picture

        return picture(img, alpha, self.config.background, scale, shift, self.config.picture, gen, self.bank)


# ---------------------------------------------------------------------------------------------- statistics


def run_fields(args, ds: Dataset, categories: list[str] | None = None) -> dict:
    """The RunConfig fields a new run of any kind fills from its command and dataset: the sizes, what the
    training renderings look like (background level, framing, occupied share), the seed."""
    from pathlib import Path

    from .config import CONFIG_VERSION

    stats = dataset_statistics(ds, ds.indices("train", categories))
    return {
        "version": CONFIG_VERSION,
        "data": str(Path(args.data).resolve()),
        "image_size": ds.image_size,
        "resolution": ds.resolution,
        "categories": categories,
        "background": stats["background"],
        "fill": stats["fill"],
        "occupancy": stats["occupancy"],
        "seed": args.seed,
    }


def step_batches(dataset: ViewDataset, batch_size: int, seed: int, step: int, ctx, workers: int = 0):
    """An endless iterator of the batches from `step` on: the batches a run resumed at `step` must see."""
    loader = make_loader(
        dataset,
        batch_size,
        seed=seed,
        start_step=step,
        rank=ctx.rank,
        world=ctx.world,
        workers=workers,
        pin_memory=ctx.device.type == "cuda",
    )
    return iter(loader)


def dataset_statistics(ds: Dataset, models: np.ndarray, max_models: int = 200) -> dict:
    """Measured on (a sample of) the training models: occupied share, background level, framing.

    `fill` is the median longest side of the alpha bounding box over the image side: framing.frame_picture scales
    a user's object to it, as the renderer framed the training images."""
    models = np.asarray(models)
    pick = (
        models[np.linspace(0, len(models) - 1, min(max_models, len(models))).astype(int)]
        if len(models)
        else []
    )
    occ, bgs, fills = [], [], []
    for m in pick:
        occ.append(float(np.asarray(ds.voxels[m]).mean()))
        a = np.asarray(ds.alpha[m])
        im = np.asarray(ds.images[m])
        if (a == 0).any():
            bgs.append(float(np.median(im[a == 0])) / 255.0)
        for v in range(a.shape[0]):
            ys, xs = np.nonzero(a[v] > 127)
            if len(xs):
                fills.append(max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / a.shape[-1])
    return {
        "occupancy": float(np.mean(occ)) if occ else 0.03,
        "background": float(np.median(bgs)) if bgs else 1.0,
        "fill": float(np.median(fills)) if fills else 0.7,
    }
