"""ShapeNetCore v1 and v2 folders: layout detection, the synset taxonomy and the rotation into voxlift's frame.

Layouts (detected per model, so a folder may mix them):
    v1: <root>/<synset>/<model id>/model.obj
    v2: <root>/<synset>/<model id>/models/model_normalized.obj
`root` may also be one synset folder. Model ids are `<synset>/<model id>`, stable across runs.

Frames, from ShapeNet's own README.txt files (quoted in mesh.py next to the constants):
    v1: up +Y, front +X  -> mesh.SHAPENET_V1
    v2: up +Y, front -Z  -> mesh.SHAPENET_V2
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import VoxliftError
from .mesh import SHAPENET_V1, SHAPENET_V2, Mesh, to_canonical

# ShapeNetCore synsets (WordNet 3.0 offsets) -> taxonomy names. The first 13 are the 3D-R2N2 benchmark's.
SYNSETS = {
    "02691156": "airplane",
    "02828884": "bench",
    "02933112": "cabinet",
    "02958343": "car",
    "03001627": "chair",
    "03211117": "display",
    "03636649": "lamp",
    "03691459": "loudspeaker",
    "04090263": "rifle",
    "04256520": "sofa",
    "04379243": "table",
    "04401088": "telephone",
    "04530566": "watercraft",
    # the rest of ShapeNetCore's 55
    "02747177": "trash bin",
    "02773838": "bag",
    "02801938": "basket",
    "02808440": "bathtub",
    "02818832": "bed",
    "02843684": "birdhouse",
    "02871439": "bookshelf",
    "02876657": "bottle",
    "02880940": "bowl",
    "02924116": "bus",
    "02942699": "camera",
    "02946921": "can",
    "02954340": "cap",
    "02992529": "cellphone",
    "03046257": "clock",
    "03085013": "keyboard",
    "03207941": "dishwasher",
    "03261776": "earphone",
    "03325088": "faucet",
    "03337140": "file cabinet",
    "03467517": "guitar",
    "03513137": "helmet",
    "03593526": "jar",
    "03624134": "knife",
    "03642806": "laptop",
    "03710193": "mailbox",
    "03759954": "microphone",
    "03761084": "microwave",
    "03790512": "motorbike",
    "03797390": "mug",
    "03928116": "piano",
    "03938244": "pillow",
    "03948459": "pistol",
    "03991062": "flowerpot",
    "04004475": "printer",
    "04074963": "remote",
    "04099429": "rocket",
    "04225987": "skateboard",
    "04330267": "stove",
    "04460130": "tower",
    "04468005": "train",
    "04554684": "washer",
}
R2N2_SYNSETS = list(SYNSETS)[:13]
NAME_TO_SYNSET = {name: s for s, name in SYNSETS.items()}
_SYNSET_RE = re.compile(r"^\d{8}$")

V1_FILE = "model.obj"
V2_FILE = os.path.join("models", "model_normalized.obj")


@dataclass
class ShapeNetModel:
    synset: str
    model_id: str
    path: Path
    version: int  # 1 or 2

    @property
    def id(self) -> str:
        return f"{self.synset}/{self.model_id}"

    @property
    def category(self) -> str:
        return SYNSETS.get(self.synset, self.synset)


def category_name(synset_or_name: str) -> str:
    """Taxonomy name of a synset id or of a name (checked); VoxliftError if neither."""
    if synset_or_name in SYNSETS:
        return SYNSETS[synset_or_name]
    if synset_or_name in NAME_TO_SYNSET:
        return synset_or_name
    raise VoxliftError(
        f"unknown category {synset_or_name!r} (use a ShapeNet name such as chair, table, "
        f"or a synset id such as 03001627)"
    )


def _model_file(model_dir: Path) -> tuple[Path, int] | None:
    if (model_dir / V2_FILE).is_file():
        return model_dir / V2_FILE, 2
    if (model_dir / V1_FILE).is_file():
        return model_dir / V1_FILE, 1
    return None


def _synset_dirs(root: Path) -> list[Path]:
    """The synset folders under `root`, or [root] when root is itself a synset folder."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    synsets = [p for p in subdirs if _SYNSET_RE.match(p.name)]
    if synsets:
        return synsets
    if _SYNSET_RE.match(root.name) or any(_model_file(p) for p in subdirs[:20]):
        return [root]
    return []


def is_shapenet(root: str | os.PathLike) -> bool:
    root = Path(root)
    for s in _synset_dirs(root):
        for m in sorted(p for p in s.iterdir() if p.is_dir())[:20]:
            if _model_file(m):
                return True
    return False


def iter_shapenet(root: str | os.PathLike, synsets: set[str] | None = None):
    """ShapeNetModel for each model folder holding a v1 or v2 OBJ, sorted by (synset, model id)."""
    for sdir in _synset_dirs(Path(root)):
        synset = sdir.name
        if synsets is not None and synset not in synsets:
            continue
        for mdir in sorted(p for p in sdir.iterdir() if p.is_dir()):
            found = _model_file(mdir)
            if found:
                yield ShapeNetModel(synset, mdir.name, found[0], found[1])


def load_shapenet(model: ShapeNetModel) -> Mesh:
    from .obj import read_obj

    mesh = read_obj(model.path)
    mesh.check(str(model.path))
    return to_canonical(mesh, SHAPENET_V2 if model.version == 2 else SHAPENET_V1)
