"""addon/io/: the glTF writer read back by trimesh, its named constants, the OBJ writer (Y up, as Blender's
OBJ import expects by default), and the grid writers (all atomic)."""

import json
import struct

import numpy as np
import pytest
import trimesh
from _blender_util import last_json, run_in_blender

from voxlift import meshing
from voxlift.dataset_tools.binvox import read_binvox
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.obj import read_obj
from voxlift.io import constants
from voxlift.io.axes import y_up_to_z_up
from voxlift.io.gltf import glb_bytes, write_glb, z_up_to_y_up
from voxlift.io.grids import read_prediction_npz, read_probs_npz, write_grid_binvox, write_probs_npz
from voxlift.io.obj import write_mesh_obj


def box_mesh():
    """A 2x2x2-voxel box in a 4^3 grid: the cube [-0.25, 0.25] x [-0.25, 0.25] x [-0.5, 0] (Z up)."""
    occ = np.zeros((4, 4, 4), bool)
    occ[1:3, 1:3, 0:2] = True
    v, q = meshing.cubes_mesh(occ, greedy=True)
    return v, meshing.triangulate(q)


def glb_json(data: bytes) -> dict:
    jlen, jtype = struct.unpack(constants.GLB_CHUNK_HEADER_FORMAT, data[12:20])
    assert jtype == constants.GLB_CHUNK_JSON
    return json.loads(data[20 : 20 + jlen])


def test_glb_writer_is_valid_gltf():
    v, tris = box_mesh()
    data = glb_bytes(v, tris, "box")
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data)) and length % 4 == 0
    doc = glb_json(data)
    assert doc["accessors"][0]["count"] == len(v) and doc["nodes"][0]["name"] == "box"
    mesh = trimesh.load(trimesh.util.wrap_as_stream(data), file_type="glb", force="mesh")
    assert mesh.is_watertight and mesh.volume == pytest.approx(8 / 64)
    # glTF is Y up: Blender's z in [-0.5, 0] becomes y, its y in [-0.25, 0.25] becomes -z.
    assert np.allclose(mesh.bounds, [[-0.25, -0.5, -0.25], [0.25, 0.0, 0.25]])


def test_gltf_constants_are_the_specification_codes():
    # glTF 2.0 specification, 5.1.3 (componentType), 5.11.4 (bufferView.target), 5.24.4 (primitive.mode).
    assert constants.ComponentType.FLOAT == 5126 and constants.ComponentType.UNSIGNED_INT == 5125
    assert constants.ComponentType.UNSIGNED_SHORT == 5123 and constants.ComponentType.BYTE == 5120
    assert constants.BufferViewTarget.ARRAY_BUFFER == 34962
    assert constants.BufferViewTarget.ELEMENT_ARRAY_BUFFER == 34963
    assert constants.PrimitiveMode.TRIANGLES == 4 and constants.PrimitiveMode.POINTS == 0
    assert constants.GLB_MAGIC == b"glTF" and constants.GLB_CHUNK_BIN == b"BIN\0"
    assert struct.calcsize(constants.GLB_HEADER_FORMAT) == 12
    assert struct.calcsize(constants.GLB_CHUNK_HEADER_FORMAT) == 8


def test_document_uses_the_named_codes_and_the_voxlift_look():
    v, tris = box_mesh()
    doc = glb_json(glb_bytes(v, tris))
    pos, idx = doc["accessors"]
    assert pos["componentType"] == constants.ComponentType.FLOAT and pos["type"] == "VEC3"
    assert idx["componentType"] == constants.ComponentType.UNSIGNED_INT and idx["count"] == tris.size
    targets = [view["target"] for view in doc["bufferViews"]]
    assert targets == [
        constants.BufferViewTarget.ARRAY_BUFFER,
        constants.BufferViewTarget.ELEMENT_ARRAY_BUFFER,
    ]
    assert doc["meshes"][0]["primitives"][0]["mode"] == constants.PrimitiveMode.TRIANGLES
    pbr = doc["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorFactor"] == list(constants.MATERIAL_COLOR)
    assert pbr["roughnessFactor"] == constants.MATERIAL_ROUGHNESS
    # POSITION's bounds are those of the stored (Y-up) positions.
    assert np.allclose(pos["min"], z_up_to_y_up(v).min(0)) and np.allclose(pos["max"], z_up_to_y_up(v).max(0))


def test_empty_mesh_is_still_a_loadable_file():
    doc = glb_json(glb_bytes(np.zeros((0, 3)), np.zeros((0, 3), int)))
    assert doc["accessors"][0]["count"] == 0 and doc["buffers"][0]["byteLength"] == 0


def test_write_glb_replaces_a_file_whole_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "box.glb"
    out.write_bytes(b"an older file")
    v, tris = box_mesh()
    write_glb(out, v, tris, "box")
    assert out.read_bytes() == glb_bytes(v, tris, "box")
    assert [p.name for p in tmp_path.iterdir()] == ["box.glb"]


def test_write_into_a_missing_folder_fails_without_leftovers(tmp_path):
    v, tris = box_mesh()
    with pytest.raises(OSError):
        write_glb(tmp_path / "no" / "box.glb", v, tris)
    assert list(tmp_path.iterdir()) == []


def test_obj_writer_round_trip(tmp_path):
    v, tris = box_mesh()
    write_mesh_obj(tmp_path / "box.obj", v, tris, comment="a box")
    mesh = read_obj(tmp_path / "box.obj")
    # Y up in the file: (x, y, z) -> (x, z, -y); turned back, the same floats.
    assert np.array_equal(mesh.vertices, z_up_to_y_up(v).astype(np.float64))
    assert np.array_equal(y_up_to_z_up(mesh.vertices), v) and np.array_equal(mesh.faces, tris)
    assert (tmp_path / "box.obj").read_text().startswith("# a box\n")


OBJ_IMPORT = """
import json
import numpy as np
bpy.ops.wm.read_homefile(use_empty=True)
bpy.ops.wm.obj_import(filepath={path!r})  # Blender's defaults: up Y, forward -Z
obj = bpy.context.selected_objects[0]
co = np.array([obj.matrix_world @ v.co for v in obj.data.vertices])
print(json.dumps({{"co": co.tolist()}}))
"""


def test_blender_imports_the_obj_upright(tmp_path):
    """A chair-like L (a seat, a back at +Y, i.e. behind) comes into Blender with the back up and behind."""
    occ = np.zeros((8, 8, 8), bool)
    occ[:, :, :2] = True  # seat: the bottom two layers
    occ[:, 6:, :] = True  # back: the rear two rows, full height
    v, q = meshing.cubes_mesh(occ, greedy=True)
    write_mesh_obj(tmp_path / "l.obj", v, meshing.triangulate(q))
    script = OBJ_IMPORT.format(path=str(tmp_path / "l.obj"))
    co = np.array(last_json(run_in_blender(script, tmp_path, install=False).stdout)["co"])

    def rows(a):
        a = np.round(np.asarray(a, np.float64), 5)
        return a[np.lexsort(a.T[::-1])]

    assert co.shape == v.shape and np.array_equal(rows(co), rows(v))  # the scene's vertices, not turned


def test_binvox_grid_fills_the_unit_cube(tmp_path):
    occ = np.zeros((8, 8, 8), bool)
    occ[2:5, 1:7, 0:3] = True
    write_grid_binvox(tmp_path / "g.binvox", occ)
    grid = read_binvox(tmp_path / "g.binvox")
    assert np.array_equal(grid.voxels, occ)
    assert np.allclose(grid.translate, constants.GRID_ORIGIN) and grid.scale == constants.GRID_SIDE


def test_probabilities_npz_round_trip_and_bad_file(tmp_path):
    probs = np.random.default_rng(0).random((2, 4, 4, 4)).astype(np.float64)
    write_probs_npz(tmp_path / "p.npz", probs, True, ["a", "b"])
    back, viewer_centred = read_probs_npz(tmp_path / "p.npz")
    assert back.dtype == np.float32 and np.allclose(back, probs) and viewer_centred is True
    with np.load(tmp_path / "p.npz") as z:
        assert list(z["names"]) == ["a", "b"]
    old = read_prediction_npz(tmp_path / "p.npz")  # a file from before the extras: they read as None
    assert (
        old["threshold"] is None
        and old["found"] is None
        and old["boxes"] is None
        and old["checkpoint"] is None
    )
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(VoxliftError, match="bad.npz"):
        read_probs_npz(tmp_path / "bad.npz")


def test_prediction_npz_carries_threshold_how_found_boxes_and_model(tmp_path):
    """What a backend child hands the add-on: everything the panel shows and places by."""
    probs = np.random.default_rng(1).random((2, 4, 4, 4)).astype(np.float32)
    boxes = np.array([[0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]], np.float32)
    write_probs_npz(tmp_path / "p.npz", probs, False, ["a", "b"], threshold=0.37, found=["alpha", "mask model"],
                    boxes=boxes, checkpoint="/x/run/best.safetensors")  # fmt: skip
    z = read_prediction_npz(tmp_path / "p.npz")
    assert np.array_equal(z["probs"], probs) and z["viewer_centred"] is False and z["names"] == ["a", "b"]
    assert z["threshold"] == pytest.approx(0.37) and z["found"] == ["alpha", "mask model"]
    assert np.array_equal(z["boxes"], boxes) and z["checkpoint"] == "/x/run/best.safetensors"
    write_probs_npz(tmp_path / "bad.npz", probs, True, ["a", "b"], found=["alpha"])  # one 'found' for two
    with pytest.raises(VoxliftError, match="bad.npz"):
        read_prediction_npz(tmp_path / "bad.npz")


def test_downsample_is_a_box_mean_in_unit_range():
    from voxlift.io.images import MIN_IMAGE_SIDE, downsample

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (300, 410, 3), dtype=np.uint8)
    small = downsample(a, 100)  # k = 5
    ref = a[:300, :410].reshape(60, 5, 82, 5, 3).mean(axis=(1, 3)) / 255
    assert small.dtype == np.float32 and np.allclose(small, ref, atol=1e-5)
    assert downsample(a, 1000).shape == a.shape  # small enough already: only scaled to [0, 1]
    sixteen = (rng.random((40, 40)) * 65535).astype(np.uint16)
    assert np.allclose(downsample(sixteen, 20), sixteen.reshape(20, 2, 20, 2).mean(axis=(1, 3)) / 65535)
    # A panorama keeps a short side big enough to show an object.
    assert min(downsample(np.zeros((40, 4000), np.uint8), 512).shape) >= MIN_IMAGE_SIDE
