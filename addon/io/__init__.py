"""voxlift's file formats without bpy: images in; glTF, OBJ, binvox and .npz out.

Like the glTF add-on's `io/` side: plain numpy, no Blender, so the CLI, the panels and the tests share it.
Every write goes through dataset_tools.fileio.atomic_write_bytes: an existing file is never half-written.
Named constants of the formats (and the look of voxlift's meshes) are in constants.py.
"""
