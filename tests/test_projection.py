"""Projection of camera images into an object's UV texture (addon/projection.py): texel geometry, cameras, the
z-buffer, view weights and their merge, on planes and a cube built in numpy; and in headless bpy, the object's
triangles and the camera read from Blender against Blender's own world_to_camera_view and a projected cube."""

from __future__ import annotations

import itertools
from pathlib import Path

import bpykit
import numpy as np
import pytest
from regia.addon import projection
from regia.addon.projection import (
    Camera,
    depth_buffer,
    project,
    sample_bilinear,
    silhouette_distance,
    texel_geometry,
    to_pixels,
    view_weights,
)
from regia.addon.uv_raster import NO_FACE, rasterise

RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


# ---- scenes built in numpy -----------------------------------------------------------------------------------


def view_matrix(position: np.ndarray, target: np.ndarray, up) -> np.ndarray:
    """World to camera: the camera looks down its -z, its y up, as Blender's cameras do."""
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    view = np.eye(4)
    view[:3, :3] = [right, np.cross(right, forward), -forward]
    view[:3, 3] = -view[:3, :3] @ position
    return view


def camera(position, target, width=64, height=64, fov=40.0, up=(0.0, 0.0, 1.0)) -> Camera:
    """A perspective camera as Blender's matrices give it: OpenGL clip space, the horizontal field of view fitted."""
    position, target = np.asarray(position, float), np.asarray(target, float)
    tx = np.tan(np.radians(fov) / 2)
    ty = tx * height / width
    near, far = 0.1, 100.0
    projection = np.array(
        [
            [1 / tx, 0, 0, 0],
            [0, 1 / ty, 0, 0],
            [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
            [0, 0, -1, 0],
        ]
    )
    return Camera(projection @ view_matrix(position, target, up), position, width, height)


def orthographic(position, target, width=64, height=64, scale=3.0, up=(0.0, 1.0, 0.0)) -> Camera:
    """An orthographic camera `scale` world units wide, as Blender's matrices give it."""
    position, target = np.asarray(position, float), np.asarray(target, float)
    near, far = 0.1, 100.0
    lens = np.diag([2 / scale, 2 / scale * width / height, -2 / (far - near), 1.0])
    lens[2, 3] = -(far + near) / (far - near)
    return Camera(lens @ view_matrix(position, target, up), position, width, height)


def quad(corners, uv_corners=((0, 0), (1, 0), (1, 1), (0, 1))) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two triangles of a planar quad (corners counter-clockwise seen from its front): uvs, positions, normals."""
    corners, uv_corners = np.asarray(corners, float), np.asarray(uv_corners, float)
    normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
    normal /= np.linalg.norm(normal)
    index = [[0, 1, 2], [0, 2, 3]]
    return uv_corners[index], corners[index], np.broadcast_to(normal, (2, 3, 3)).copy()


def plane(z: float = 0.0, size: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The square [-size, size]² at height z facing +z, UV (0, 0) at (-size, -size)."""
    s = size
    return quad([(-s, -s, z), (s, -s, z), (s, s, z), (-s, s, z)])


def cube() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cube [-1, 1]³ with its six faces side by side in a 3×2 UV grid: uvs, positions, normals, face of each
    triangle (0..5 for +x, -x, +y, -y, +z, -z)."""
    parts = []
    for face, (axis, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)]):
        u_axis, v_axis = [a for a in range(3) if a != axis]
        corners = []
        for du, dv in [(-1, -1), (1, -1), (1, 1), (-1, 1)]:
            point = np.zeros(3)
            point[axis], point[u_axis], point[v_axis] = sign, du, dv
            corners.append(point)
        if sign * np.cross(corners[1] - corners[0], corners[2] - corners[0])[axis] < 0:
            corners = corners[::-1]  # wind counter-clockwise seen from outside
        cell = np.array([face % 3, face // 3]) / (3, 2)
        uv = [cell + (0.02 + 0.96 * np.array(c)) / (3, 2) for c in [(0, 0), (1, 0), (1, 1), (0, 1)]]
        parts.append(quad(corners, uv))
    uvs, positions, normals = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return uvs, positions, normals, np.repeat(np.arange(6), 2)


def flat(colour, width=64, height=64) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (height, width, 3)).copy()


def previous_texture(size: int = 32) -> np.ndarray:
    """A previous texture with a different value in every texel, so `kept exactly` means something."""
    rng = np.random.default_rng(0)
    return rng.random((size, size, 3)).astype(np.float32) * 0.5


# ---- geometry and cameras ------------------------------------------------------------------------------------


def test_texel_geometry_interpolates_the_surface_at_texel_centres_with_the_rasterisers_coverage():
    uvs, positions, normals = quad([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [(0, 0), (1, 0), (1, 1), (0, 0.5)])
    geometry = texel_geometry(uvs, positions, normals, 16, 8)
    assert np.array_equal(geometry.covered, rasterise(uvs, np.zeros(2), 16, 8) != NO_FACE)
    assert not geometry.covered.all() and geometry.covered.sum() > 64
    # In the first triangle (u >= v) the map is affine: (u, v) -> (2u - 1, 2v - 1, 0); row 0 is v = 1.
    row, col = 5, 12
    u, v = (col + 0.5) / 16, 1 - (row + 0.5) / 8
    assert np.allclose(geometry.position[row, col], (2 * u - 1, 2 * v - 1, 0), atol=1e-6)
    assert np.allclose(geometry.normal[geometry.covered], (0, 0, 1))
    assert not geometry.position[~geometry.covered].any() and not geometry.normal[~geometry.covered].any()


def test_smooth_normals_are_interpolated_and_normalised():
    uvs, positions, _ = plane()
    tilted = np.array([[-1, 0, 1], [1, 0, 1], [1, 0, 1]], float)  # x-tilt from -45° at u = 0 to +45° at u = 1
    normals = np.stack([tilted, tilted[[0, 2, 0]]])
    normals[1] = [[-1, 0, 1], [1, 0, 1], [-1, 0, 1]]
    geometry = texel_geometry(uvs, positions, normals, 8, 8)
    assert np.allclose(np.linalg.norm(geometry.normal[geometry.covered], axis=-1), 1, atol=1e-6)
    middle = geometry.normal[4, 3:5]  # u = 0.4375 and 0.5625: tilted a little either way
    assert middle[0, 0] < 0 < middle[1, 0] and np.allclose(middle[0, 0], -middle[1, 0], atol=1e-6)


def test_a_camera_maps_its_target_to_the_image_centre_and_the_frame_top_to_row_zero():
    cam = camera((0, -5, 0), (0, 0, 0), width=80, height=40, fov=60, up=(0, 0, 1))
    pixels, depth = to_pixels(cam, np.array([[0, 0, 0], [0, 0, 5 * np.tan(np.radians(30)) / 2], [0, -7, 0]]))
    assert np.allclose(pixels[0], (40, 20)) and np.isclose(depth[0], 5)
    assert np.allclose(pixels[1], (40, 0))  # half the width's tangent is the top edge of a 2:1 frame
    assert depth[2] < 0  # behind the camera


def test_the_depth_buffer_is_perspective_correct_and_clips_at_the_near_plane():
    cam = camera((0, 0, 2), (0, 4, 1.5), width=48, height=32, up=(0, 0, 1))  # the horizon in the frame
    floor = plane(z=0.0, size=20.0)[1]  # reaches behind the camera: must be clipped, not drawn inverted
    depth = depth_buffer(cam, floor)
    # Every pixel ray that points down meets the floor at t = 2 / -dz; its view depth is t * (dz · forward).
    inverse = np.linalg.inv(cam.matrix)
    for row, col in [(31, 0), (31, 47), (20, 24), (17, 5)]:
        ndc = np.array([(col + 0.5) / 24 - 1, 1 - (row + 0.5) / 16, 0.5, 1])
        far = inverse @ ndc
        ray = far[:3] / far[3] - cam.position
        expected = (-2 / ray[2]) * ray @ cam.forward
        assert np.isclose(depth[row, col], expected, rtol=1e-9), (row, col)
    assert np.isinf(depth[:3]).all() and np.isfinite(depth[20:]).all()  # the sky above the floor's far edge


def test_batched_small_triangles_and_strips_of_a_large_one_draw_the_same_depth(monkeypatch: pytest.MonkeyPatch):
    cam = camera((0.3, -1.0, 2.0), (0, 0, 0), width=160, height=120)
    whole = depth_buffer(cam, plane(size=2.0)[1])
    # The same square as 20×20 cells of two triangles each: drawn in batches of boxes of a shared size.
    edges = np.linspace(-2, 2, 21)
    cells = [
        quad([(x0, y0, 0), (x1, y0, 0), (x1, y1, 0), (x0, y1, 0)])[1]
        for y0, y1 in itertools.pairwise(edges)
        for x0, x1 in itertools.pairwise(edges)
    ]
    tiled = depth_buffer(cam, np.concatenate(cells))
    assert np.isfinite(whole).mean() > 0.5 and np.array_equal(np.isfinite(whole), np.isfinite(tiled))
    assert np.allclose(whole[np.isfinite(whole)], tiled[np.isfinite(tiled)], rtol=1e-9)
    monkeypatch.setattr(projection, "BATCH_PIXELS", 500)  # the big triangles drawn a few rows at a time
    assert np.array_equal(depth_buffer(cam, plane(size=2.0)[1]), whole)


# ---- weights ------------------------------------------------------------------------------------------------


def test_sampling_is_bilinear_between_pixel_centres_and_clamped_at_the_border():
    image = np.arange(12, dtype=float).reshape(3, 4, 1)
    at = np.array([[0.5, 0.5], [1.0, 0.5], [1.5, 1.0], [-3.0, 0.5], [3.9, 2.9]])
    assert np.allclose(sample_bilinear(image, at)[:, 0], [0, 0.5, 3, 0, 11])
    assert np.allclose(sample_bilinear(np.full((1, 1, 2), 7.0), at), 7.0)  # a single pixel: no neighbour to read
    assert np.allclose(sample_bilinear(image[:1], at)[:, 0], [0, 0.5, 1, 0, 3])


def test_silhouette_distance_falls_to_zero_at_empty_pixels_depth_jumps_and_the_border():
    depth = np.full((12, 20), 5.0)
    depth[:, 14:] = np.inf
    depth[:, :3] = 2.0  # a jump between columns 2 and 3
    factor = silhouette_distance(depth, feather=4)
    expected = [0.25, 0.25, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 0.75, 0.5, 0.25, 0, 0, 0, 0, 0, 0, 0]
    assert factor[6].tolist() == pytest.approx(expected)  # the border, the jump at 2|3, the empty pixels from 14
    assert factor[0, 7] == 0.25 and factor[1, 7] == 0.5  # the image's border
    assert (silhouette_distance(depth, feather=0) == 1).all()


def test_a_flat_colour_reaches_every_visible_texel_and_the_rest_keep_the_previous_texture():
    geometry = texel_geometry(*plane(), 32, 32)
    cam = camera((0, 0, 4), (0, 0, 0), up=(0, 1, 0))
    previous = previous_texture()
    texture, weights = project(previous, [(flat(RED), cam)], geometry, plane()[1])
    seen = weights > 0
    assert seen.sum() > 0.9 * geometry.covered.sum()
    assert np.allclose(texture[seen], RED, atol=1e-6)
    assert np.array_equal(texture[~seen], previous[~seen])
    assert texture.dtype == np.float32 and weights.dtype == np.float32


def test_texels_behind_an_occluder_keep_the_previous_colour_exactly():
    geometry = texel_geometry(*plane(), 32, 32)
    cam = camera((0, 0, 4), (0, 0, 0), up=(0, 1, 0))
    blocker = plane(z=1.0, size=0.3)[1]
    previous = previous_texture()
    texture, weights = project(previous, [(flat(RED), cam)], geometry, np.concatenate([plane()[1], blocker]))
    x, y = geometry.position[..., 0], geometry.position[..., 1]
    # The blocker's shadow from the camera at height 4 onto the floor: |x|, |y| < 0.3 * 4 / 3 = 0.4.
    hidden = geometry.covered & (np.abs(x) < 0.37) & (np.abs(y) < 0.37)
    visible = geometry.covered & ((np.abs(x) > 0.55) | (np.abs(y) > 0.55)) & (np.abs(x) < 0.8) & (np.abs(y) < 0.8)
    assert hidden.sum() > 20 and visible.sum() > 100
    assert (weights[hidden] == 0).all() and np.array_equal(texture[hidden], previous[hidden])
    assert (weights[visible] > 0).all() and np.allclose(texture[visible], RED, atol=1e-6)


def test_back_facing_texels_are_unchanged():
    uvs, positions, normals = plane()
    below = camera((0, 0, -4), (0, 0, 0), up=(0, 1, 0))
    previous = previous_texture()
    # The plane is in the depth buffer (it is two-sided there): only its normal turns the camera away.
    facing_up = texel_geometry(uvs, positions, normals, 32, 32)
    texture, weights = project(previous, [(flat(RED), below)], facing_up, positions)
    assert (weights == 0).all() and np.array_equal(texture, previous)
    flipped = texel_geometry(uvs, positions, -normals, 32, 32)
    texture, weights = project(previous, [(flat(RED), below)], flipped, positions)
    assert (weights > 0).mean() > 0.9 and np.allclose(texture[weights > 0], RED)


def test_a_cube_takes_the_colour_on_the_faces_towards_the_camera_only():
    uvs, positions, normals, faces = cube()
    geometry = texel_geometry(uvs, positions, normals, 48, 32)
    face = np.full(geometry.shape, -1)
    owner = rasterise(uvs, np.arange(len(uvs)), 48, 32)
    face[owner >= 0] = faces[owner[owner >= 0]]
    cam = camera((5, -4, 3), (0, 0, 0), width=96, height=64)  # sees +x, -y and +z
    previous = np.zeros((32, 48, 3), np.float32) + BLUE
    texture, weights = project(previous, [(flat(RED, 96, 64), cam)], geometry, positions, feather=2)
    for index in (0, 3, 4):
        on = face == index
        assert (weights[on] > 0).mean() > 0.8, index
        assert np.allclose(texture[on & (weights > 0)], RED, atol=1e-6)
    far = np.isin(face, (1, 2, 5))
    assert far.sum() > 500 and (weights[far] == 0).all() and np.array_equal(texture[far], previous[far])


def test_a_grazing_view_weighs_less_than_a_head_on_one():
    geometry = texel_geometry(*plane(), 32, 32)
    centre = np.array([[0.0, 0.0, 0.0]])
    up = np.array([[0.0, 0.0, 1.0]])
    weights = []
    for angle in (0, 60, 80):
        a = np.radians(angle)
        cam = camera((0, -4 * np.sin(a), 4 * np.cos(a)), (0, 0, 0), up=(0, 1, 0) if angle == 0 else (0, 0, 1))
        w, _ = view_weights(cam, centre, up, depth_buffer(cam, plane()[1]), power=2, feather=0)
        weights.append(float(w[0]))
    assert weights == pytest.approx([1.0, 0.25, np.cos(np.radians(80)) ** 2], rel=1e-6)
    assert geometry.covered.all()


def test_two_cameras_merge_by_their_weights_nearer_the_head_on_one():
    geometry = texel_geometry(*plane(), 32, 32)
    head_on = camera((0, 0, 4), (0, 0, 0), up=(0, 1, 0))
    a = np.radians(60)
    grazing = camera((0, -4 * np.sin(a), 4 * np.cos(a)), (0, 0, 0))
    views = [(flat(RED), head_on), (flat(GREEN), grazing)]
    texture, weights = project(previous_texture(), views, geometry, plane()[1], power=2, feather=0)
    centre = texture[15:17, 15:17].reshape(-1, 3)
    assert (centre[:, 0] > centre[:, 1]).all() and (centre[:, 1] > 0.1).all()
    assert np.allclose(centre.sum(1), 1, atol=1e-6)  # a weighted mean of red and green
    assert np.allclose(centre[:, 0], 1 / 1.25, atol=0.03)  # cos² weights: 1 against about 0.25
    only_red, red_weights = project(previous_texture(), views[:1], geometry, plane()[1], power=2, feather=0)
    assert (weights[geometry.covered] >= red_weights[geometry.covered]).all()
    assert np.allclose(only_red[red_weights > 0], RED)


def test_feathering_falls_off_toward_a_silhouette():
    # The camera looks at the plane's right edge (x = 1): the plane ends mid-frame.
    geometry = texel_geometry(*plane(), 64, 64)
    cam = camera((1, 0, 4), (1, 0, 0), up=(0, 1, 0))
    weights, pixels = view_weights(
        cam, geometry.position, geometry.normal, depth_buffer(cam, plane()[1]), power=0, feather=6
    )
    row = weights[32]  # y ≈ 0; texel columns 32..63 run to the edge
    distance = np.array([pixels[32, c, 0] for c in range(64)])
    inner = row[(distance > 1) & (distance < 31.5 - 7)]  # more than the feather from the silhouette
    assert np.allclose(inner[inner > 0][-5:], 1.0) and (inner > 0).all()
    rim = row[48:]
    assert (np.diff(rim) <= 1e-9).all() and rim[-1] < 0.15 and rim[0] == 1.0
    assert 0 < row[-3] < row[-8] < 1


def test_an_orthographic_camera_projects_along_its_axis():
    geometry = texel_geometry(*plane(), 32, 32)
    previous = previous_texture()
    blocker = plane(z=1.0, size=0.3)[1]
    above = orthographic((0, 0, 4), (0, 0, 0))
    occluders = np.concatenate([plane()[1], blocker])
    texture, weights = project(previous, [(flat(RED), above)], geometry, occluders, feather=2)
    x, y = geometry.position[..., 0], geometry.position[..., 1]
    hidden = (np.abs(x) < 0.25) & (np.abs(y) < 0.25)  # straight below the blocker: no perspective widening
    assert (weights[hidden] == 0).all() and np.array_equal(texture[hidden], previous[hidden])
    uncovered = (np.abs(x) > 0.33) & (np.abs(x) < 0.4) & (np.abs(y) < 0.2)  # in the shadow a perspective one casts
    assert uncovered.sum() >= 4 and (weights[uncovered] > 0).all()
    beside = (np.abs(x) > 0.45) & (np.abs(x) < 0.8) & (np.abs(y) < 0.5)  # past the blocker's edge and feather
    assert beside.sum() >= 8 and (weights[beside] == 1).all() and np.allclose(texture[beside], RED)
    a = np.radians(60)
    tilted = orthographic((0, -4 * np.sin(a), 4 * np.cos(a)), (0, 0, 0), up=(0, 0, 1))
    corner = np.array([[0.6, 0.4, 0.0], [-0.3, 0.1, 0.0]])  # the same direction to the camera everywhere
    w, pixels = view_weights(tilted, corner, np.array([[0, 0, 1.0]] * 2), depth_buffer(tilted, plane()[1]), feather=0)
    assert np.allclose(w, 0.25) and np.allclose(pixels[0, 0] - pixels[1, 0], 0.9 / 3 * 64)


# ---- Blender: geometry and cameras read from bpy, against Blender's own view -----------------------------------


@pytest.mark.bpy
@pytest.mark.slow
@pytest.mark.parametrize("python", [None, *bpykit.EXTRA_BPY_PYTHONS], ids=lambda p: "bpy" if p is None else p)
def test_blenders_objects_and_cameras_project_as_blender_sees_them(tmp_path: Path, python: str | None):
    bpykit.require_bpy()
    zip_path = bpykit.build_extension(tmp_path / "dist")
    env = bpykit.bpy_env(tmp_path / "home")
    script = (Path(__file__).parent / "bpy_scripts" / "projection_geometry.py").read_text()
    result = bpykit.run_bpy(script, tmp_path, str(zip_path), env=env, python=python)
    run = {item["phase"]: item for item in bpykit.results(result)}
    camera_run = run["camera"]
    assert camera_run["size"] == [480, 216] and camera_run["points"] >= 24
    for kind in ("PERSP", "ORTHO"):
        pixel_error, depth_error, in_frame = camera_run["errors"][kind]
        assert pixel_error < 1e-3 and depth_error < 1e-5, camera_run
        assert in_frame > 0.5  # the points land in the frame, not only off it
    geometry = run["geometry"]
    assert geometry["triangles"] == geometry["blender_triangles"] > 12  # the modifier's output, not the cage
    assert geometry["position_error"] < 1e-5 and geometry["normal_error"] < 1e-5, geometry
    assert geometry["flat_normal_error"] < 1e-5  # perpendicular to the transformed faces: the inverse transpose
    assert geometry["occluders"] == geometry["visible_triangles"]  # both meshes, not the hidden cube's 12 more
    cube_run = run["cube"]
    assert cube_run["facing_texels"] > 1000 and cube_run["far_texels"] > 1000
    assert cube_run["facing_seen"] > 0.8 and cube_run["facing_error"] < 1e-5, cube_run
    assert cube_run["far_unchanged"] and cube_run["far_weight"] == 0.0
