"""render_protocol.py, what the render parent and its workers say to each other, without Blender: frames
split anywhere in the pipe, results and job lines round trip, and the parent's side imports no bpy."""

import subprocess
import sys

import numpy as np

from voxlift.dataset_tools.camera import fixed_views
from voxlift.render_appearance import jittered_views
from voxlift.render_protocol import (
    DONE,
    FrameReader,
    Job,
    decode_result,
    encode_frame,
    encode_result,
    job_line,
    parse_job_line,
    tmp_prefix,
    worker_command,
)


def test_frames_survive_any_split_of_the_pipe():
    rng = np.random.default_rng(0)
    gray, alpha = rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)
    voxels = rng.random((5, 5, 5)) < 0.3
    stream = (
        encode_frame({"type": "ready", "pid": 7})
        + encode_frame({"type": DONE, "pos": 3, "id": "m"}, encode_result(gray, alpha, voxels))
        + encode_frame({"type": "skip", "pos": 4, "id": "n", "reason": "broken"})
    )
    for cut in range(0, len(stream), 37):
        reader, got = FrameReader(), []
        for piece in (stream[:cut], stream[cut:]):
            reader.feed(piece)
            got += list(reader.frames())
        assert [h["type"] for h, _ in got] == ["ready", DONE, "skip"] and not reader.buffer
        g, a, v = decode_result(got[1][0], got[1][1], 3, 8, 5)
        assert np.array_equal(g, gray) and np.array_equal(a, alpha) and np.array_equal(v, voxels)


def test_job_lines_carry_a_models_own_cameras():
    views = jittered_views("m", fixed_views(4, size=64), 64)
    back = parse_job_line(job_line(Job(5, "sh3f:x/é", views)).decode())
    assert (back.pos, back.id) == (5, "sh3f:x/é")
    assert all(np.array_equal(a.world_to_pixel, b.world_to_pixel) for a, b in zip(back.views, views))
    assert parse_job_line(job_line(Job(1, "a")).decode()).views is None


def test_the_worker_command_and_its_frames_folder():
    cmd = worker_command({"result_fd": "RESULT_FD"})
    assert cmd[0] == sys.executable and ".blender.render_worker" in cmd[2] and cmd[3] == "voxlift"
    assert tmp_prefix(123) == "voxlift-render-123-"


def test_the_parent_side_imports_no_bpy():
    code = (
        "import sys, voxlift.render_job, voxlift.render_protocol, voxlift.render_appearance, "
        "voxlift.cmd_render; assert 'bpy' not in sys.modules, 'bpy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
