"""Camera convention: azimuth 0 looks at the front (-Y), the projection puts +X on the right, Z up."""

import numpy as np

from voxlift.dataset_tools.camera import camera_matrix_world, fixed_views, make_view, project


def test_front_view_axes():
    v = make_view(0, 0, 3, 40, 100)
    uv = project(np.array([[0, 0, 0], [0.2, 0, 0], [0, 0, 0.2]]), v.world_to_pixel)
    assert np.allclose(uv[0], [50, 50])
    assert uv[1, 0] > 50 and np.isclose(uv[1, 1], 50)  # +X to the right
    assert uv[2, 1] < 50 and np.isclose(uv[2, 0], 50)  # +Z up (v grows downwards)


def test_azimuth_90_looks_from_plus_x():
    m = camera_matrix_world(90, 0, 2)
    assert np.allclose(m[:3, 3], [2, 0, 0])
    assert np.allclose(m[:3, 2], [1, 0, 0])  # the camera looks down its -Z, towards the origin


def test_unit_cube_stays_in_frame_from_default_views():
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    for v in fixed_views(size=128):
        uv = project(corners, v.world_to_pixel)
        assert (uv > 0).all() and (uv < 128).all()
