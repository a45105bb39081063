"""addon/io/: the glTF writer read back by trimesh, its named constants, and the grid writers (all atomic)."""

import json
import struct

import numpy as np
import pytest
import trimesh

from voxlift import meshing
from voxlift.dataset_tools.binvox import read_binvox
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.obj import read_obj
from voxlift.io import constants
from voxlift.io.gltf import glb_bytes, write_glb, z_up_to_y_up
from voxlift.io.grids import read_probs_npz, write_grid_binvox, write_probs_npz
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
    assert np.array_equal(mesh.vertices, v.astype(np.float64)) and np.array_equal(mesh.faces, tris)
    assert (tmp_path / "box.obj").read_text().startswith("# a box\n")


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
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(VoxliftError, match="bad.npz"):
        read_probs_npz(tmp_path / "bad.npz")
