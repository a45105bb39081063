"""The CycleGAN's generator halves, which the cross autoencoders pre-train and diagnose checks one by one.

    G_2D->3D = enc2d + dec3d        G_3D->2D = enc3d + dec2d

latent (networks.py): the halves meet in one vector. projective (projective.py, the default where the
dataset's views share one camera up to azimuth): they meet in an image-aligned code, moved between image and
grid along the dataset's camera rays. UnpairedConfig holds what the halves are made of; the cyclegan and
autoencoder configs add their own training options to it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from torch import nn

from ..dataset_tools.errors import VoxliftError
from .config import DECODER_HEADS, NORMS, RunConfig, check, one_of, sized
from .networks import ImageDecoder, ImageEncoder, VoxelDecoder, VoxelEncoder
from .unpaired_data import PAIRINGS

GENERATOR_PARTS = ("enc2d", "dec3d", "enc3d", "dec2d")
GENERATORS = ("auto", "projective", "latent")
SPECTRAL = ("critics", "all", "none")


@dataclass(kw_only=True)
class UnpairedConfig(RunConfig):
    latent_dim: int = field(metadata=check(1, 8192))
    encoder_width: int = field(metadata=check(1, 512))
    decoder_width: int = field(metadata=check(1, 512))
    norm: str = field(metadata=check(choices=NORMS))
    decoder_head: str = one_of("deconv", DECODER_HEADS)  # runs from before the option: transposed convs
    generators: str = one_of("latent", ("projective", "latent"))  # runs from before the option: latent
    camera: dict | None = None  # the viewer frame's camera (projective generators)
    spectral: str = one_of("critics", SPECTRAL)
    pairing: str = one_of("disjoint", PAIRINGS)
    views: list[int] | None = None
    pos_weight: float | None = sized(None, 0.0, 1e4)

    def check(self, source) -> None:
        super().check(source)
        if self.generators == "projective":
            from .projective import camera_from_config, check_sizes

            try:
                camera_from_config({"camera": self.camera})
                check_sizes(self.input_size, self.resolution)
            except ValueError as exc:
                raise VoxliftError(f"{source}: {exc}") from None


def add_network_arguments(p: argparse.ArgumentParser) -> None:
    """The generator halves' options, the same for `train cyclegan` and `train autoencoder`."""
    from .networks import add_decoder_head_argument

    p.add_argument(
        "--input-size", type=int, help="resize images to this (default: the dataset's size, at most 64)"
    )
    p.add_argument("--latent-dim", type=int, default=256)
    p.add_argument("--encoder-width", type=int, default=16)
    p.add_argument("--decoder-width", type=int, default=8)
    add_decoder_head_argument(p)
    add_generators_argument(p)
    p.add_argument("--norm", default="batch", choices=NORMS, help="generators' normalisation")
    p.add_argument(
        "--spectral",
        default="critics",
        choices=SPECTRAL,
        help="spectral normalisation on every layer of the critics (default), of all networks, or none",
    )
    p.add_argument("--pairing", default="disjoint", choices=PAIRINGS, help=PAIRING_HELP)
    p.add_argument("--views", type=int, nargs="+", help="only these views' renderings (default: every view)")
    p.add_argument("--categories", nargs="+", help="train on these categories only")
    p.add_argument(
        "--pos-weight",
        type=float,
        help="occupied voxels' weight in the voxel losses (default: from their share in the grid domain)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-samples", type=int, default=256, help="val models used for validation")


PAIRING_HELP = "disjoint: renderings and grids from two disjoint halves of the models (default)"


def add_generators_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--generators",
        default="auto",
        choices=GENERATORS,
        help="projective: the halves meet in an image-aligned code, moved between image and grid "
        "with the dataset's camera (projective.py); latent: in one vector. auto (default): "
        "projective when the dataset's views share one camera up to azimuth",
    )


def network_fields(args, ds) -> dict:
    """UnpairedConfig's fields for a new run, from the command's options and the dataset."""
    from .data import run_fields

    input_size = args.input_size or min(ds.image_size, 64)
    kind, camera = resolve_generators(args.generators, ds, input_size)
    return {
        **run_fields(args, ds, args.categories),
        "input_size": input_size,
        "viewer_centred": True,
        "views": args.views,
        "latent_dim": args.latent_dim,
        "encoder_width": args.encoder_width,
        "decoder_width": args.decoder_width,
        "decoder_head": args.decoder_head,
        "generators": kind,
        "camera": camera,
        "norm": args.norm,
        "spectral": args.spectral,
        "pairing": args.pairing,
        "pos_weight": args.pos_weight,
        "batch_size": args.batch_size,
    }


def resolve_generators(choice: str, ds, input_size: int) -> tuple[str, dict | None]:
    """(generators, camera) for a new run's config: "auto" is projective where the data allow it."""
    from . import projective as pj

    if choice == "latent":
        return "latent", None
    try:
        pj.check_sizes(input_size, ds.resolution)
        return "projective", pj.viewer_camera(
            ds
        )  # a VoxliftError naming the dataset when it has no one camera
    except ValueError as exc:
        if choice == "projective":
            raise VoxliftError(f"{ds.path}: --generators projective: {exc}") from None
    except VoxliftError:
        if choice == "projective":
            raise
    return "latent", None


def generator_halves(config: UnpairedConfig, parts=GENERATOR_PARTS) -> dict[str, nn.Module]:
    """The halves named in `parts`, latent or projective as the config says."""
    s, r, z = config.input_size, config.resolution, config.latent_dim
    ew, dw, norm = config.encoder_width, config.decoder_width, config.norm
    sn = config.spectral == "all"
    if config.generators == "projective":
        from . import projective as pj

        camera = pj.camera_from_config({"camera": config.camera})
        make = {
            "enc2d": lambda: pj.ImageToCode(s, r, z, ew, norm, sn),
            "dec3d": lambda: pj.CodeToVoxels(r, z, dw, norm, sn, camera, ew),
            "enc3d": lambda: pj.VoxelToCode(r, z, ew, norm, sn, camera),
            "dec2d": lambda: pj.CodeToImage(s, r, z, dw, norm, sn, ew),
        }
    else:
        head = config.decoder_head
        make = {
            "enc2d": lambda: ImageEncoder(s, z, ew, norm, sn),
            "dec3d": lambda: VoxelDecoder(r, z, dw, norm, sn, head),
            "enc3d": lambda: VoxelEncoder(r, z, ew, norm, sn),
            "dec2d": lambda: ImageDecoder(s, z, dw, norm, sn, head),
        }
    return {name: make[name]() for name in parts}


class ImageToVoxels(nn.Module):
    """G_2D->3D alone: [B, 1, S, S] images in [-1, 1] -> logits [B, R, R, R], like the paired model."""

    def __init__(self, config: UnpairedConfig):
        super().__init__()
        for name, module in generator_halves(config, ("enc2d", "dec3d")).items():
            setattr(self, name, module)

    def forward(self, x):
        return self.dec3d(self.enc2d(x))


SHAPE_KEYS = ("input_size", "resolution", "latent_dim", "encoder_width", "decoder_width", "norm")


def check_same_halves(config: UnpairedConfig, other: UnpairedConfig, source) -> None:
    """`other`'s halves (an autoencoder run) fit `config`'s networks, or a VoxliftError naming `source`."""
    for key in SHAPE_KEYS:
        if getattr(config, key) != getattr(other, key):
            raise VoxliftError(
                f"{source}: its networks have {key} {getattr(other, key)!r}, this run {getattr(config, key)!r}; "
                "train the autoencoder with the same network options"
            )
    if config.generators != other.generators or config.camera != other.camera:
        raise VoxliftError(
            f"{source}: its generators are {other.generators!r}, this run's {config.generators!r} (or their "
            "cameras differ); train the autoencoder on the same data with the same --generators"
        )
    if config.decoder_head != other.decoder_head:
        raise VoxliftError(
            f"{source}: its decoders have head {other.decoder_head!r}, this run {config.decoder_head!r}; "
            "train the autoencoder with the same --decoder-head"
        )
    if (config.spectral == "all") != (other.spectral == "all"):
        raise VoxliftError(f"{source}: spectral normalisation of the generators differs from this run's")
