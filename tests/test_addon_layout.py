"""The add-on's layout beyond test_layers.py: the command line and the panels never import each other (each
uses the bpy-free library, reconstruct.py and io/), and the choices they share are listed once."""

import argparse

from _layers import internal_graph, read_modules

from voxlift import backend_process, cmd_reconstruct, meshing
from voxlift.backend.device import DEVICES


def test_command_line_and_panels_do_not_import_each_other(repo_root):
    graph = internal_graph(read_modules(repo_root))
    cli = {m for m in graph if m == "voxlift.cli" or m.rpartition(".")[2].startswith("cmd_")}
    ui = {m for m in graph if m.rpartition(".")[2].startswith("ui_")}
    assert {"voxlift.cmd_reconstruct", "voxlift.blender.ui_reconstruct"} <= cli | ui
    assert graph["voxlift.blender.ui_reconstruct"] >= {"voxlift.reconstruct", "voxlift.io.images"}
    assert graph["voxlift.cmd_reconstruct"] >= {"voxlift.reconstruct", "voxlift.io.gltf"}
    for a, b in ((cli, ui), (ui, cli)):
        for m in sorted(a):
            assert not graph[m] & b, f"{m} imports {graph[m] & b}"


def test_one_list_of_devices_and_of_mesh_modes():
    assert backend_process.DEVICES == DEVICES  # the panels' device items are what --device takes
    assert meshing.MODES == tuple(i[0].lower() for i in meshing.MODE_ITEMS) == ("cubes", "smooth")
    parser = argparse.ArgumentParser()
    cmd_reconstruct.add_arguments("reconstruct", parser)
    choices = {a.dest: tuple(a.choices) for a in parser._actions if a.choices}
    assert choices == {"mode": meshing.MODES, "device": DEVICES}
