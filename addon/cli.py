"""The `voxlift` command: `voxlift COMMAND ARGS...`, also `blender -b -c voxlift COMMAND ARGS...`.

Each command lives in its own module with `add_arguments(parser)` and `run(args) -> int`; modules are
imported only when their command runs, so `voxlift sources` needs neither bpy nor torch.
Bad input ends in one line `voxlift: error: ...` on stderr and exit status 1, never a traceback; so does a
command that needs PyTorch in a Python without it (the line says how to get it). Inside Blender, when the
add-on's preferences name a Python environment, the backend's commands run there (`blender -c voxlift train`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import backend_process, host
from .backend.registry import KINDS
from .dataset_tools.errors import VoxliftError

# command -> (module relative to this package, one-line help)
COMMANDS = {
    "sources": ("cmd_dataset", "list the models a mesh source holds"),
    "voxelize": ("cmd_dataset", "voxelise models into .binvox files"),
    "inspect": ("cmd_dataset", "print a summary of a dataset"),
    "import-r2n2": ("cmd_dataset", "convert the 3D-R2N2 renderings and binvox grids into a dataset"),
    "render": ("cmd_render", "render an aligned, fixed-viewpoint dataset with Blender"),
    "merge": ("cmd_render", "join dataset shards into one dataset"),
    "qa": ("cmd_render", "check that renderings and voxel grids line up"),
    "train": ("cmd_train", f"train a model ({', '.join(KINDS)})"),
    "evaluate": ("cmd_train", "evaluate a checkpoint on a dataset split"),
    "baseline": ("cmd_train", "mean-shape and retrieval baselines"),
    "diagnose": ("cmd_train", "check each part of the unpaired model on its own"),
    "reconstruct": ("cmd_reconstruct", "reconstruct images into meshes (.blend, .obj, .glb, .binvox)"),
    "demo": ("demo", "the whole story on procedural furniture"),
}
# Commands the backend runs whole: inside Blender they go to the Python environment of the preferences.
BACKEND_COMMANDS = {"train", "evaluate", "baseline", "diagnose"}
# Commands that continue where they stopped when run again (the others simply start over).
RESUMABLE = {"train", "render", "voxelize", "import-r2n2"}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxlift", description="2D images of furniture to 3D voxel models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == only:  # the others need no arguments to be listed in --help
            mod = importlib.import_module(f"{__package__}.{module}")
            mod.add_arguments(name, p)
            p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Import only the module of the command asked for (fast start, no torch for dataset commands).
    only = next((a for a in argv if not a.startswith("-")), None)
    if only not in COMMANDS:
        only = None
    try:
        # Building the parser imports the command's module: for the backend's commands, torch.
        backend = host.blender_backend() if only in BACKEND_COMMANDS else None
        if backend is not None and backend.external:
            return backend_process.run_in_backend(backend, argv)
        parser = build_parser(only)
        args = parser.parse_args(argv)
        return int(args._module.run(args) or 0)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in backend_process.TORCH_PACKAGES:
            raise
        print(f"voxlift: error: {backend_process.missing_torch_message(root, only or '')}", file=sys.stderr)
        return 1
    except VoxliftError as exc:
        print(f"voxlift: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a missing file, a full disk, a permission: one line naming the path
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"voxlift: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        again = " (run the same command again to resume)" if only in RESUMABLE else ""
        print(f"voxlift: interrupted{again}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
