"""Where a reconstruction stands at a reference image (placement.py): the picture's viewing angles, where
Blender draws the picture, and the place and size that make the object cover the picture's object."""

import math

import numpy as np
import pytest

from voxlift import placement


def euler_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """Blender's rotation_euler (XYZ order, radians) as a 3x3 matrix: Rz @ Ry @ Rx."""
    cx, sx, cy, sy, cz, sz = (
        math.cos(rx),
        math.sin(rx),
        math.cos(ry),
        math.sin(ry),
        math.cos(rz),
        math.sin(rz),
    )
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def facing(az: float, el: float, location=(0.0, 0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    """The matrix_world of an image empty that faces a viewer at azimuth `az`, elevation `el` (degrees),
    as one added from that view is: rotation_euler (90 - el, 0, az)."""
    m = np.eye(4)
    m[:3, :3] = euler_xyz(math.radians(90 - el), 0.0, math.radians(az)) * scale
    m[:3, 3] = location
    return m


@pytest.mark.parametrize("az,el", [(0, 0), (45, 20), (-120, 35), (170, -10), (90, 0)])
def test_viewing_angles_of_an_empty_facing_a_view(az, el):
    m = facing(az, el)
    got = placement.viewing_angles(m[:3, 2])
    assert got == pytest.approx((az, el), abs=1e-9)
    # voxlift's camera position for those angles is along the empty's local +Z
    cam = np.array([math.sin(math.radians(az)) * math.cos(math.radians(el)),
                    -math.cos(math.radians(az)) * math.cos(math.radians(el)), math.sin(math.radians(el))])  # fmt: skip
    assert np.allclose(m[:3, 2], cam)
    assert np.allclose(
        m[:3, 0], [math.cos(math.radians(az)), math.sin(math.radians(az)), 0]
    )  # viewer's right


def test_front_view_reference_and_straight_down():
    front = np.eye(4)
    front[:3, :3] = euler_xyz(math.radians(90), 0, 0)  # added from Blender's Front view (numpad 1)
    assert placement.viewing_angles(front[:3, 2]) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert placement.viewing_angles([0, 0, 2]) == (0.0, 90.0)  # from straight above: no azimuth


def test_picture_rectangle_as_blender_draws_it():
    # Longer side = display size; the default offset (-0.5, -0.5) centres the picture on the empty.
    assert np.allclose(placement.picture_rectangle(200, 100, 2.0), [-1, -0.5, 1, 0.5])
    assert np.allclose(placement.picture_rectangle(100, 200, 2.0, (0, 0)), [0, 0, 1, 2])
    assert np.allclose(placement.picture_rectangle(64, 64, 1.0, (-0.2, -0.7)), [-0.2, -0.7, 0.8, 0.3])
    # Pixels twice as wide as high (Image.display_aspect (2, 1)): Blender draws them half as high instead.
    assert np.allclose(
        placement.picture_rectangle(64, 64, 1.0, pixel_aspect=(2, 1)), [-0.5, -0.25, 0.5, 0.25]
    )


def test_box_rows_top_first_land_at_the_top():
    rect = placement.picture_rectangle(100, 100, 2.0)  # [-1, 1] both ways
    # The top-left quarter of the picture (rows 0..50 are the top): x in [-1, 0], y in [0, 1].
    assert np.allclose(placement.box_on_picture((0, 0, 0.5, 0.5), rect), [-1, 0, 0, 1])
    assert np.allclose(placement.box_on_picture((0.25, 0.5, 1, 1), rect), [-0.5, -1, 1, 0])


@pytest.mark.parametrize("az,el,scale", [(40, 20, 1.5), (-75, 0, 0.4), (180, 30, 1.0)])
def test_placed_object_covers_the_pictures_object(az, el, scale):
    rng = np.random.default_rng(int(az) % 7)
    verts = rng.uniform([-0.2, -0.15, -0.45], [0.2, 0.15, 0.3], size=(500, 3))  # taller than wide
    m = facing(az, el, location=(1.0, 2.0, 3.0), scale=scale)
    box = np.array([-0.3, -0.6, 0.2, 0.5])  # in the empty's local units: 0.5 wide, 1.1 high
    where = placement.place_on_picture(verts, m, box)
    world = where.location + where.scale * verts
    u, v, n = (m[:3, :3] / scale).T
    centre = m @ np.array([-0.05, -0.05, 0.0, 1.0])
    pu, pv, pn = world @ u, world @ v, world @ n
    assert np.ptp(pv) == pytest.approx(1.1 * scale)  # the longer side of the box, in world units
    assert np.ptp(pu) < 0.5 * scale * 1.5  # the other side scaled alike (the object's own proportions)
    assert (pu.min() + pu.max()) / 2 == pytest.approx(centre[:3] @ u)  # centred on the box
    assert (pv.min() + pv.max()) / 2 == pytest.approx(centre[:3] @ v)
    assert (pn.min() + pn.max()) / 2 == pytest.approx(centre[:3] @ n)  # its middle on the picture's plane
    assert (where.azimuth, where.elevation) == pytest.approx((az, el))


def test_a_wide_box_sizes_by_its_width():
    verts = np.array([[-0.5, -0.1, -0.2], [0.5, 0.1, 0.2]])
    where = placement.place_on_picture(verts, facing(0, 0), np.array([0, 0, 3.0, 1.0]))
    assert where.scale == pytest.approx(3.0)  # 1 unit wide -> 3 wide
