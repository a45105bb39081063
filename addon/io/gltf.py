"""A minimal glTF 2.0 binary (.glb) writer in numpy: one mesh (positions and triangle indices) and one plain
material. glTF is Y up: the scene's Z-up coordinates (x, y, z) are stored as (x, z, -y) (axes.py)."""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from ..dataset_tools.fileio import atomic_write_bytes
from .axes import z_up_to_y_up
from .constants import (
    GENERATOR,
    GLB_ALIGNMENT,
    GLB_BIN_PADDING,
    GLB_CHUNK_BIN,
    GLB_CHUNK_HEADER_FORMAT,
    GLB_CHUNK_JSON,
    GLB_HEADER_FORMAT,
    GLB_JSON_PADDING,
    GLB_MAGIC,
    GLB_VERSION,
    GLTF_VERSION,
    MATERIAL_COLOR,
    MATERIAL_METALLIC,
    MATERIAL_NAME,
    MATERIAL_ROUGHNESS,
    BufferViewTarget,
    ComponentType,
    PrimitiveMode,
)


def gltf_document(positions: np.ndarray, index_count: int, name: str) -> dict:
    """The JSON part for float32 positions [V, 3] followed by `index_count` uint32 indices in one buffer."""
    pos_bytes = positions.nbytes
    idx_bytes = index_count * np.dtype(np.uint32).itemsize
    empty = not len(positions)
    return {
        "asset": {"version": GLTF_VERSION, "generator": GENERATOR},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "materials": [
            {
                "name": MATERIAL_NAME,
                "pbrMetallicRoughness": {
                    "baseColorFactor": list(MATERIAL_COLOR),
                    "metallicFactor": MATERIAL_METALLIC,
                    "roughnessFactor": MATERIAL_ROUGHNESS,
                },
            }
        ],
        "meshes": [
            {
                "name": name,
                "primitives": [
                    {
                        "attributes": {"POSITION": 0},
                        "indices": 1,
                        "mode": PrimitiveMode.TRIANGLES,
                        "material": 0,
                    }
                ],
            }
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": ComponentType.FLOAT,
                "count": len(positions),
                "type": "VEC3",
                # POSITION needs its bounds (glTF 2.0, 3.6.2.5).
                "min": [0, 0, 0] if empty else positions.min(axis=0).tolist(),
                "max": [0, 0, 0] if empty else positions.max(axis=0).tolist(),
            },
            {
                "bufferView": 1,
                "componentType": ComponentType.UNSIGNED_INT,
                "count": index_count,
                "type": "SCALAR",
            },
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": pos_bytes, "target": BufferViewTarget.ARRAY_BUFFER},
            {
                "buffer": 0,
                "byteOffset": pos_bytes,
                "byteLength": idx_bytes,
                "target": BufferViewTarget.ELEMENT_ARRAY_BUFFER,
            },
        ],
        "buffers": [{"byteLength": pos_bytes + idx_bytes}],
    }


def _padded(data: bytes, pad: bytes) -> bytes:
    return data + pad * (-len(data) % GLB_ALIGNMENT)


def glb_container(document: dict, binary: bytes) -> bytes:
    """A GLB file: header, the JSON chunk, the binary chunk."""
    js = _padded(json.dumps(document, separators=(",", ":")).encode(), GLB_JSON_PADDING)
    binary = _padded(binary, GLB_BIN_PADDING)
    chunk_header = struct.calcsize(GLB_CHUNK_HEADER_FORMAT)
    total = struct.calcsize(GLB_HEADER_FORMAT) + chunk_header + len(js) + chunk_header + len(binary)
    return b"".join(
        (
            struct.pack(GLB_HEADER_FORMAT, GLB_MAGIC, GLB_VERSION, total),
            struct.pack(GLB_CHUNK_HEADER_FORMAT, len(js), GLB_CHUNK_JSON),
            js,
            struct.pack(GLB_CHUNK_HEADER_FORMAT, len(binary), GLB_CHUNK_BIN),
            binary,
        )
    )


def glb_bytes(vertices: np.ndarray, triangles: np.ndarray, name: str = GENERATOR) -> bytes:
    """vertices [V, 3] (Z up) and triangles [F, 3] as the bytes of a .glb file."""
    positions = z_up_to_y_up(vertices)
    indices = np.ascontiguousarray(np.asarray(triangles).reshape(-1), dtype=np.uint32)
    return glb_container(
        gltf_document(positions, len(indices), name), positions.tobytes() + indices.tobytes()
    )


def write_glb(path: str | os.PathLike, vertices: np.ndarray, triangles: np.ndarray, name: str = GENERATOR):
    atomic_write_bytes(path, glb_bytes(vertices, triangles, name))
