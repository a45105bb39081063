"""Named constants: glTF 2.0's numeric codes, the GLB container, the grid's place in the canonical frame and
the look of a reconstruction (one place, like the glTF add-on's io/com/constants.py)."""

from __future__ import annotations

from enum import IntEnum


class ComponentType(IntEnum):
    """accessor.componentType: the GL type of one component (glTF 2.0, 3.6.2.2)."""

    BYTE = 5120
    UNSIGNED_BYTE = 5121
    SHORT = 5122
    UNSIGNED_SHORT = 5123
    UNSIGNED_INT = 5125
    FLOAT = 5126


class BufferViewTarget(IntEnum):
    """bufferView.target: what the GPU binds the view as."""

    ARRAY_BUFFER = 34962  # vertex attributes
    ELEMENT_ARRAY_BUFFER = 34963  # indices


class PrimitiveMode(IntEnum):
    """mesh.primitive.mode: how the indices make up the geometry."""

    POINTS = 0
    LINES = 1
    LINE_LOOP = 2
    LINE_STRIP = 3
    TRIANGLES = 4
    TRIANGLE_STRIP = 5
    TRIANGLE_FAN = 6


GLTF_VERSION = "2.0"
GENERATOR = "voxlift"

# The binary container (.glb): a 12-byte header, then chunks of (length, type, data), all 4-byte aligned.
GLB_MAGIC = b"glTF"
GLB_VERSION = 2
GLB_HEADER_FORMAT = "<4sII"  # magic, version, total length
GLB_CHUNK_HEADER_FORMAT = "<I4s"  # chunk length, chunk type
GLB_CHUNK_JSON = b"JSON"
GLB_CHUNK_BIN = b"BIN\0"
GLB_ALIGNMENT = 4
GLB_JSON_PADDING = b" "  # the JSON chunk is padded with spaces, the binary one with zeros
GLB_BIN_PADDING = b"\0"

# The canonical frame (README): an R^3 grid fills the cube [-0.5, 0.5]^3, so a .binvox of it says so.
GRID_ORIGIN = (-0.5, -0.5, -0.5)
GRID_SIDE = 1.0

# The look of every reconstruction, in Blender and in glTF files: a light warm grey, slightly rough.
MATERIAL_NAME = "voxlift"
MATERIAL_COLOR = (0.8, 0.72, 0.6, 1.0)  # linear RGBA
MATERIAL_ROUGHNESS = 0.6
MATERIAL_METALLIC = 0.0
