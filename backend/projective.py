"""Projective generator halves for the CycleGAN: the two domains meet in an image-aligned code.

The "latent" generators (networks.py) pass everything through one vector, so which grid belongs to which
image is arbitrary: an unpaired CycleGAN has nothing that ties the silhouette in the image to the shape in
the grid, and at a CPU budget it learned none (test IoU 0.05-0.09, below the mean shape; BENCHMARKS.md).
Here the code between an encoder and a decoder is a pair

    (F [B, C, 16, 16], z [B, latent])      F: features per image cell, z: the global shape code
                                           (16 = cells, half the grid's side)

and the 3D halves move between grid and image cells with the dataset's known camera (viewer frame: every
view is the azimuth-0 camera, data.py), not with learned weights:

    ImageToCode    image -> stride-2 convolutions down to 16x16 = F; more convolutions and a linear layer = z
    VoxelToCode    grid -> 3D convolutions at 16^3, sampled along each cell's camera ray (the depth samples
                   become channels) = F; the same kind of tail = z
    CodeToVoxels   z -> a 16^3 block (transposed convolutions), F back-projected into 16^3 (each cell reads
                   the image cell its centre projects to), and the cell's depth; 3D convolutions, sub-voxel
                   shuffle to 32^3
    CodeToImage    z -> a 16x16 block, F beside it; 2D convolutions up to the image size

So G_3D->2D is a learned renderer and G_2D->3D a learned back-projection: the cycle image -> grid -> image
can only close when the grid's outline matches the image's, which is the correspondence the cycle must find,
and the 3D critic decides what the unseen depth holds. Same interface as the latent halves (the cross
autoencoders cross them the same way); the camera comes from the dataset (`viewer_camera`), in the config.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..dataset_tools.camera import make_view
from ..dataset_tools.errors import VoxliftError
from .networks import _channels, _norm, _shuffle_up, _sn

# The image-aligned code map and the 3D block it is lifted into have `cells` = resolution / 2 on a side
# (16 for 32^3 grids); each cell's ray is sampled `cells` times.


def viewer_camera(ds) -> dict:
    """The one camera of a dataset's viewer frame: world_to_pixel of azimuth 0 at the views' elevation,
    distance and fov, in the dataset's image pixels; with voxel_to_world. Datasets whose views differ in
    anything but azimuth (or per model: the R2N2 layout) have none."""
    views = ds.views
    if not views or len({(v.elevation, v.distance, v.fov) for v in views}) != 1:
        raise VoxliftError(
            f"{ds.path}: its views differ in more than azimuth, so the viewer frame has no "
            "single camera; train with --generators latent"
        )
    v = views[0]
    p = make_view(0.0, v.elevation, v.distance, v.fov, ds.image_size).world_to_pixel
    return {
        "world_to_pixel": np.asarray(p).tolist(),
        "image_size": ds.image_size,
        "distance": v.distance,
        "voxel_to_world": np.asarray(ds.voxel_to_world).tolist(),
    }


def camera_from_config(config: dict) -> dict:
    """A run config's camera, checked (a checkpoint's config is data: ValueError when it is not a camera)."""
    cam = config.get("camera")
    try:
        p = np.asarray(cam["world_to_pixel"], dtype=np.float64)
        m = np.asarray(cam["voxel_to_world"], dtype=np.float64)
        size, distance = float(cam["image_size"]), float(cam["distance"])
    except (TypeError, KeyError, ValueError):
        raise ValueError("projective generators without a camera in their config") from None
    if (
        p.shape != (3, 4)
        or m.shape != (4, 4)
        or not (np.isfinite(p).all() and np.isfinite(m).all())
        or not 0 < size <= 4096
        or not 0 < distance < 1e3
        or abs(np.linalg.det(p[:, :3])) < 1e-9
        or abs(np.linalg.det(m[:3, :3])) < 1e-12
    ):
        raise ValueError("the config's camera is not a usable projection")
    return cam


def _world_to_grid(points: np.ndarray, camera: dict, resolution: int) -> np.ndarray:
    """World points [..., 3] -> grid_sample coordinates of a [X, Y, Z] grid, in grid_sample's (z, y, x) order."""
    m = np.asarray(camera["voxel_to_world"], dtype=np.float64)
    idx = (points - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T  # voxel index coordinates (centres at integers)
    return ((2 * idx + 1) / resolution - 1)[..., ::-1]


def ray_samples(camera: dict, resolution: int, cells: int, depths: int) -> torch.Tensor:
    """grid_sample coordinates [1, depths, cells, cells, 3] of points along the camera rays through the
    centres of a cells x cells image (rows top first), at depths spanning the grid's cube."""
    p = np.asarray(camera["world_to_pixel"], dtype=np.float64)
    s = camera["image_size"]
    u = (np.arange(cells) + 0.5) * s / cells
    uu, vv = np.meshgrid(u, u)  # [row, column]
    half = math.sqrt(3) / 2 * _cube_side(camera)
    w = np.linspace(camera["distance"] - half, camera["distance"] + half, depths)
    # P X = w (u, v, 1) with P = [M | t]:  X = M^-1 (w (u, v, 1) - t)
    pix = np.stack([uu, vv, np.ones_like(uu)], -1)  # [cells, cells, 3]
    rhs = w[:, None, None, None] * pix[None] - p[:, 3]
    points = rhs @ np.linalg.inv(p[:, :3]).T  # [depths, cells, cells, 3]
    return torch.from_numpy(_world_to_grid(points, camera, resolution).copy()).float()[None]


def cell_pixels(camera: dict, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the centres of a cells^3 block over the grid's cube project: grid_sample coordinates
    [1, cells * cells, cells, 2] into an image (x right, y down; cell order [x, y, z]), and each centre's
    depth [1, 1, cells, cells, cells] in units of the cube's half diagonal around the camera distance."""
    m = np.asarray(camera["voxel_to_world"], dtype=np.float64)
    side = _cube_side(camera)
    lo = m[:3, 3] - m[0, 0] / 2  # the cube's corner (voxel 0's outer edge)
    c = lo[:, None] + (np.arange(cells) + 0.5) * side / cells  # [3, cells]
    pts = np.stack(np.meshgrid(*c, indexing="ij"), -1)  # [x, y, z, 3]
    p = np.asarray(camera["world_to_pixel"], dtype=np.float64)
    h = pts @ p[:, :3].T + p[:, 3]
    uv = h[..., :2] / h[..., 2:3] / camera["image_size"] * 2 - 1
    depth = (h[..., 2] - camera["distance"]) / (math.sqrt(3) / 2 * side)
    return (
        torch.from_numpy(uv.reshape(1, cells * cells, cells, 2)).float(),
        torch.from_numpy(depth[None, None]).float(),
    )


def _cube_side(camera: dict) -> float:
    m = np.asarray(camera["voxel_to_world"], dtype=np.float64)
    return float(m[0, 0]) * round(1 / float(m[0, 0]))  # resolution * voxel size: 1 for voxlift datasets


def project(volume: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """[B, C, X, Y, Z] features -> [B, C * D, n, n]: each image cell's samples along its ray, as channels."""
    b, c = volume.shape[:2]
    s = F.grid_sample(
        volume,
        rays.expand(b, -1, -1, -1, -1).to(volume.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B, C, D, n, n]
    return s.reshape(b, c * s.shape[2], *s.shape[3:])


def silhouette(probs: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """Soft silhouette [B, n, n] of occupancy probabilities [B, X, Y, Z] seen along `rays` [1, D, n, n, 3]:
    1 - prod(1 - p) over each ray's samples (a fixed, differentiable renderer of outlines)."""
    s = project(probs[:, None], rays)  # [B, D, n, n]
    return 1 - torch.exp(torch.log1p(-s.clamp(max=1 - 1e-4)).sum(1))


def outline_masks(alpha: torch.Tensor, cells: int) -> torch.Tensor:
    """float 0/1 [B, cells, cells]: the image cells that any part of the object covers, from alpha [B, S, S]
    in [0, 1] (max-pooled: a 32^3 grid's voxels are coarser than thin parts in the image; measured on the
    benchmark's val split, these cells and the true grids' silhouettes at 32 cells agree at IoU 0.88). A cell
    counts when any of its pixels is covered, while the silhouette follows the ray through its centre: the
    mask is a little wider than the grid's outline, which leans the term towards slightly fuller grids."""
    return (F.adaptive_max_pool2d(alpha[:, None].float(), cells)[:, 0] > 0.5).float()


def back_project(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] image features -> [B, C, n, n, n]: every cell of the block reads the image where its centre
    projects (so one image cell's features fill its whole ray)."""
    b, c = image.shape[:2]
    n = pixels.shape[2]
    s = F.grid_sample(
        image,
        pixels.expand(b, -1, -1, -1).to(image.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B, C, n*n, n]
    return s.reshape(b, c, n, n, n)


def check_sizes(image_size: int, resolution: int) -> None:
    """ValueError unless projective generators can be built for these images and grids."""
    _image_steps(image_size, grid_cells(resolution))


class _Tail(nn.Module):
    """F [B, C, cells, cells] -> z: stride-2 convolutions to 4x4, then a linear layer."""

    def __init__(self, cells: int, channels: int, latent_dim: int, norm: str, spectral: bool):
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for _ in range(round(math.log2(cells / 4))):
            layers += [
                _sn(nn.Conv2d(cin, 2 * cin, 4, stride=2, padding=1, bias=norm == "none"), spectral),
                _norm(norm, 2 * cin, 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin *= 2
        self.net = nn.Sequential(*layers)
        self.fc = _sn(nn.Linear(cin * 16, latent_dim), spectral)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.net(f), 1))


def code_channels(width: int) -> int:
    return 2 * width


def grid_cells(resolution: int) -> int:
    cells = resolution // 2
    if cells < 4 or 4 * 2 ** round(math.log2(cells / 4)) != cells:
        raise ValueError(f"projective generators need grids of 8 * 2^k voxels on a side (got {resolution})")
    return cells


def _image_steps(image_size: int, cells: int) -> int:
    steps = round(math.log2(max(image_size, 1) / cells))
    if steps < 1 or cells * 2**steps != image_size:
        raise ValueError(
            f"projective generators for {2 * cells}^3 grids need images of {2 * cells} * 2^k pixels "
            f"(got {image_size})"
        )
    return steps


class ImageToCode(nn.Module):
    def __init__(
        self, image_size: int, resolution: int, latent_dim: int, width: int, norm: str, spectral: bool
    ):
        super().__init__()
        cells = grid_cells(resolution)
        steps = _image_steps(image_size, cells)
        layers: list[nn.Module] = []
        cin = 1
        for s in range(steps):
            cout = code_channels(width) if s == steps - 1 else _channels(width, s)
            layers += [
                _sn(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=norm == "none"), spectral),
                _norm(norm if s > 0 else "none", cout, 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.tail = _Tail(cells, cin, latent_dim, norm, spectral)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.tail(f)


class VoxelToCode(nn.Module):
    def __init__(self, resolution: int, latent_dim: int, width: int, norm: str, spectral: bool, camera: dict):
        super().__init__()
        cells = grid_cells(resolution)
        self.features = nn.Sequential(
            _sn(nn.Conv3d(1, width, 4, stride=2, padding=1), spectral),
            nn.LeakyReLU(0.2, inplace=True),
            _sn(nn.Conv3d(width, width, 3, padding=1, bias=norm == "none"), spectral),
            _norm(norm, width, 3),
            nn.LeakyReLU(0.2, inplace=True),
        )
        c = code_channels(width)
        self.to_cells = nn.Sequential(
            _sn(nn.Conv2d(width * cells, c, 1, bias=norm == "none"), spectral),
            _norm(norm, c, 2),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.tail = _Tail(cells, c, latent_dim, norm, spectral)
        self.register_buffer("rays", ray_samples(camera, resolution, cells, cells), persistent=False)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if y.dim() == 4:
            y = y.unsqueeze(1)
        f = self.to_cells(project(self.features(y), self.rays))
        return f, self.tail(f)


class _FromLatent(nn.Module):
    """z -> a [B, C, cells, ...] block: a linear layer to 4^dims, then transposed convolutions."""

    def __init__(self, dims: int, cells: int, latent_dim: int, width: int, norm: str, spectral: bool):
        super().__init__()
        deconv = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        steps = round(math.log2(cells / 4))
        self.c0, self.dims = _channels(width, steps + 1), dims
        self.fc = _sn(nn.Linear(latent_dim, self.c0 * 4**dims), spectral)
        layers: list[nn.Module] = [_norm(norm, self.c0, dims), nn.ReLU(inplace=True)]
        for s in reversed(range(1, steps + 1)):
            layers += [
                _sn(
                    deconv(
                        _channels(width, s + 1),
                        _channels(width, s),
                        4,
                        stride=2,
                        padding=1,
                        bias=norm == "none",
                    ),
                    spectral,
                ),
                _norm(norm, _channels(width, s), dims),
                nn.ReLU(inplace=True),
            ]
        self.net = nn.Sequential(*layers)
        self.channels = _channels(width, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.c0, *([4] * self.dims))
        return self.net(h.contiguous(memory_format=torch.channels_last_3d) if self.dims == 3 else h)


class CodeToVoxels(nn.Module):
    """(F, z) -> logits [B, R, R, R]."""

    def __init__(
        self,
        resolution: int,
        latent_dim: int,
        width: int,
        norm: str,
        spectral: bool,
        camera: dict,
        code_width: int,
    ):
        super().__init__()
        cells = grid_cells(resolution)
        self.from_z = _FromLatent(3, cells, latent_dim, width, norm, spectral)
        c = self.from_z.channels
        self.net = nn.Sequential(
            _sn(nn.Conv3d(c + code_channels(code_width) + 1, c, 1, bias=norm == "none"), spectral),
            _norm(norm, c, 3),
            nn.ReLU(inplace=True),
            _sn(nn.Conv3d(c, c, 3, padding=1, bias=norm == "none"), spectral),
            _norm(norm, c, 3),
            nn.ReLU(inplace=True),
            _sn(nn.Conv3d(c, 8, 3, padding=1), spectral),
        )
        # channels-last 3D activations: ~1.7x faster 3D convolutions on the CPU (measured; paired.py does the same)
        self.to(memory_format=torch.channels_last_3d)
        pixels, depth = cell_pixels(camera, cells)
        self.register_buffer("pixels", pixels, persistent=False)
        self.register_buffer("depth", depth, persistent=False)

    def forward(self, code: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        f, z = code
        h = self.from_z(z)
        lifted = back_project(f, self.pixels)
        h = torch.cat([h, lifted, self.depth.expand(len(h), -1, -1, -1, -1).to(h.dtype)], 1)
        h = h.contiguous(memory_format=torch.channels_last_3d)
        return _shuffle_up(self.net(h), 3).squeeze(1)


class CodeToImage(nn.Module):
    """(F, z) -> raw images [B, 1, S, S] (the caller applies tanh)."""

    def __init__(
        self,
        image_size: int,
        resolution: int,
        latent_dim: int,
        width: int,
        norm: str,
        spectral: bool,
        code_width: int,
    ):
        super().__init__()
        cells = grid_cells(resolution)
        steps = _image_steps(image_size, cells)
        self.from_z = _FromLatent(2, cells, latent_dim, width, norm, spectral)
        c = self.from_z.channels
        layers: list[nn.Module] = [
            _sn(nn.Conv2d(c + code_channels(code_width), c, 3, padding=1, bias=norm == "none"), spectral),
            _norm(norm, c, 2),
            nn.ReLU(inplace=True),
        ]
        for _ in range(steps - 1):
            layers += [
                _sn(nn.ConvTranspose2d(c, c, 4, stride=2, padding=1, bias=norm == "none"), spectral),
                _norm(norm, c, 2),
                nn.ReLU(inplace=True),
            ]
        layers.append(_sn(nn.Conv2d(c, 4, 3, padding=1), spectral))
        self.net = nn.Sequential(*layers)

    def forward(self, code: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        f, z = code
        return _shuffle_up(self.net(torch.cat([self.from_z(z), f], 1)), 2)
