"""`voxlift render` with real Blender workers (bpy module): dataset, qa, kill and resume, shards, thin parts,
broken models, one writer per folder. Small renders (4 views, 64 px or less) keep this under a minute."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from voxlift.dataset_tools.dataset import DatasetWriter, open_dataset
from voxlift.dataset_tools.mesh import Y_UP_FRONT_PLUS_Z
from voxlift.dataset_tools.obj import write_obj
from voxlift.dataset_tools.qa import qa_dataset
from voxlift.dataset_tools.synthetic import box, merge

SMALL = ["--views", "4", "--image-size", "64", "--no-progress"]
N = 10
FILES = ("models.jsonl", "images.u8", "alpha.u8", "voxels.u8", "skipped.jsonl")


def voxlift(*args, check=True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [sys.executable, "-m", "voxlift", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The reference: N synthetic models rendered in one uninterrupted run with 2 workers."""
    out = tmp_path_factory.mktemp("render") / "full"
    res = voxlift("render", f"synthetic:{N}", "--out", out, *SMALL, "--workers", "2")
    assert f"{N} models rendered" in res.stdout
    return out


def test_render_writes_an_aligned_dataset(full):
    ds = open_dataset(full)
    assert (len(ds), ds.views_per_model, ds.image_size, ds.resolution) == (N, 4, 64, 32)
    assert ds.manifest["render"]["engine"] == "workbench" and ds.views is not None
    assert not ds.skipped
    for i in range(N):
        alpha, gray = np.asarray(ds.alpha[i]), np.asarray(ds.images[i])
        assert (alpha.reshape(4, -1).max(1) == 255).all()  # every view shows the object
        assert (alpha[:, 0, :] == 0).all() and (alpha[:, :, 0] == 0).all()  # and the frame holds it
        assert gray[alpha == 0].min() == 255 and gray[alpha == 255].max() < 250  # shaded on white
        assert ds.voxels[i].any()
    report = qa_dataset(full)
    s = report["summary"]
    assert s["min_score"] >= 0.97 and s["share_both_ge_0.99"] >= 0.95, s


def same_dataset(a, b) -> None:
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_killed_render_resumes_to_the_uninterrupted_result(full, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voxlift",
            "render",
            f"synthetic:{N}",
            "--out",
            str(out),
            *SMALL,
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    models = out / "models.jsonl"
    while time.monotonic() < deadline:
        if models.exists() and models.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, workers included, at an arbitrary instant
    proc.wait()
    partial = open_dataset(out)  # valid right after the kill
    assert 2 <= len(partial) < N
    # Run the same command again (restarting its worker every 3 models on the way): same bytes as `full`.
    res = voxlift("render", f"synthetic:{N}", "--out", out, *SMALL, "--workers", "2", "--restart-every", "3")
    assert "already there" in res.stdout
    same_dataset(full, out)
    # A third run has nothing left to do and changes nothing.
    res = voxlift("render", f"synthetic:{N}", "--out", out, *SMALL, "--workers", "2")
    assert f"0 models rendered, 0 skipped, {N} already there" in res.stdout
    same_dataset(full, out)


def test_shards_merge_into_the_full_dataset(full, tmp_path):
    for i in range(2):
        voxlift(
            "render",
            f"synthetic:{N}",
            "--out",
            tmp_path / f"shard{i}",
            *SMALL,
            "--workers",
            "1",
            "--shard",
            f"{i}/2",
        )
    assert len(open_dataset(tmp_path / "shard0")) == N // 2
    voxlift("merge", tmp_path / "shard0", tmp_path / "shard1", "--out", tmp_path / "merged")
    a, b = open_dataset(full), open_dataset(tmp_path / "merged")
    assert sorted(m.id for m in a.models) == sorted(m.id for m in b.models)
    index = {m.id: m.index for m in b.models}
    for m in a.models:
        j = index[m.id]
        assert (a.images[m.index] == b.images[j]).all() and (a.alpha[m.index] == b.alpha[j]).all()
        assert (a.voxels[m.index] == b.voxels[j]).all()


def thin_legged_chair():
    """A chair in the canonical frame (height 1, so OBJ import keeps its scale) whose legs are one voxel
    (1/32) square, placed on grid planes."""
    v = 1 / 32
    parts = [box((-0.4, -0.4, -2 * v), (0.4, 0.4, 0)), box((-0.4, 0.4 - 2 * v, 0), (0.4, 0.4, 0.5))]
    legs = [(-12 * v, -12 * v), (11 * v, -12 * v), (-12 * v, 11 * v), (11 * v, 11 * v)]
    parts += [box((x, y, -0.5), (x + v, y + v, -2 * v)) for x, y in legs]
    return merge(parts), [(x + v / 2, y + v / 2) for x, y in legs]


def test_thin_legs_show_in_alpha_and_broken_models_are_skipped(tmp_path):
    src = tmp_path / "objs"
    src.mkdir()
    chair, legs = thin_legged_chair()
    # The OBJ folder source reads Y up, front +Z: store the canonical chair rotated back into that frame.
    write_obj(src / "thin_chair.obj", type(chair)(chair.vertices @ Y_UP_FRONT_PLUS_Z, chair.faces))
    (src / "broken.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    size = 48  # a leg of 1/32 is ~0.8 px wide here: thinner than a pixel
    res = voxlift(
        "render",
        src,
        "--out",
        tmp_path / "ds",
        "--views",
        "8",
        "--image-size",
        size,
        "--workers",
        "1",
        "--no-progress",
    )
    ds = open_dataset(tmp_path / "ds")
    assert [m.id for m in ds.models] == ["obj:objs/thin_chair"]
    assert [s["id"] for s in ds.skipped] == ["obj:objs/broken"] and "broken" in ds.skipped[0]["reason"]
    assert "skipped" in res.stdout and "broken" in res.stderr  # listed in the log too
    vox = np.asarray(ds.voxels[0])
    for x, y in legs:  # the grid has each leg all the way down, thin (a tie may mark the neighbour too)
        i, j = int((x + 0.5) * 32), int((y + 0.5) * 32)
        assert vox[i, j, :14].all() and not vox[i - 2, j, :14].any() and not vox[i + 2, j, :14].any()
    # Along each leg's axis, every view has coverage in alpha at the projected axis (+-1 px across).
    for view, p in enumerate(ds.world_to_pixel(0)):
        alpha = np.asarray(ds.alpha[0, view])
        for x, y in legs:
            for z in np.linspace(-0.45, -0.15, 7):
                h = p @ [x, y, z, 1.0]
                u, w = h[0] / h[2], h[1] / h[2]
                row = alpha[int(w), max(int(u) - 1, 0) : int(u) + 2]
                assert row.max() > 0, (view, x, y, z)
    assert qa_dataset(tmp_path / "ds")["summary"]["min_score"] >= 0.97


def test_second_writer_is_refused_and_bad_arguments_are_one_line_errors(tmp_path):
    out = tmp_path / "busy"
    from voxlift.dataset_tools.camera import fixed_views

    with DatasetWriter(out, image_size=64, views_per_model=4, resolution=32, views=fixed_views(4, size=64)):
        res = voxlift("render", "synthetic:2", "--out", out, *SMALL, check=False)
    assert res.returncode == 1 and "another voxlift process" in res.stderr
    for args in (["synthetic:2", "--shard", "2/2"], [str(tmp_path / "missing.sh3f")]):
        res = voxlift("render", *args, "--out", tmp_path / "x", *SMALL, check=False)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("voxlift: error:"), res.stderr
    # A dataset with other settings is not silently mixed with new renders.
    res = voxlift("render", "synthetic:2", "--out", out, "--views", "3", "--image-size", "64", check=False)
    assert res.returncode == 1 and "views" in res.stderr


def test_a_dataset_of_the_first_synthetic_generator_is_not_resumed_with_the_second(tmp_path):
    """`synthetic:0/0` names another shape since the generator grew new kinds: a dataset rendered before
    (no generator version in its manifest) is refused, not mixed with new shapes under the same ids."""
    from voxlift.dataset_tools.camera import fixed_views

    out = tmp_path / "old"
    with DatasetWriter(
        out,
        image_size=64,
        views_per_model=4,
        resolution=32,
        views=fixed_views(4, size=64),
        extra_manifest={"render": {"engine": "workbench", "appearance": "plain"}},
    ) as w:
        w.append(
            id="synthetic:0/0",
            category="chair",
            source="synthetic",
            images=np.zeros((4, 64, 64), np.uint8),
            alpha=np.zeros((4, 64, 64), np.uint8),
            voxels=np.zeros((32, 32, 32), bool),
        )
    res = voxlift("render", "synthetic:2", "--out", out, *SMALL, check=False)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "generator version 1" in lines[0], res.stderr
    assert len(open_dataset(out)) == 1  # untouched


def test_merge_refuses_shards_with_other_settings(full, tmp_path):
    voxlift(
        "render",
        "synthetic:1",
        "--out",
        tmp_path / "other",
        "--views",
        "4",
        "--image-size",
        "32",
        "--no-progress",
        "--workers",
        "1",
    )
    res = voxlift("merge", full, tmp_path / "other", "--out", tmp_path / "m", check=False)
    assert res.returncode == 1 and "image_size" in res.stderr
    assert not (tmp_path / "m").exists()


def test_cancel_stops_workers_and_keeps_a_resumable_dataset(tmp_path):
    """What the panel's Cancel button does: RenderJob.cancel() mid-run."""
    from voxlift.render_job import RenderJob, RenderOptions

    opts = RenderOptions(
        sources=[f"synthetic:{N}"], out=str(tmp_path / "ds"), views=4, image_size=64, workers=1
    )
    job = RenderJob(opts).start()
    procs = [w.proc for w in job.workers]
    while job.poll(0.1) and job.done < 1:
        pass
    job.cancel()
    assert job.finished and not job.poll(0) and all(p.poll() is not None for p in procs)
    n = len(open_dataset(tmp_path / "ds"))
    assert 1 <= n < N
    job = RenderJob(opts).start()  # the lock was released: a new job resumes where this one stopped
    assert job.already == n and job.total == N - n
    job.cancel()


def test_cycles_engine_renders_aligned_images(tmp_path):
    voxlift(
        "render",
        "synthetic:1",
        "--out",
        tmp_path / "ds",
        "--engine",
        "cycles",
        "--cycles-samples",
        "4",
        "--views",
        "2",
        "--image-size",
        "32",
        "--workers",
        "1",
        "--no-progress",
    )
    ds = open_dataset(tmp_path / "ds")
    assert ds.manifest["render"]["engine"] == "cycles" and len(ds) == 1
    assert qa_dataset(tmp_path / "ds")["summary"]["min_score"] >= 0.97


def test_a_worker_killed_mid_model_is_replaced_and_nothing_is_lost(full, tmp_path):
    from voxlift.render_job import RenderJob, RenderOptions

    job = RenderJob(
        RenderOptions(sources=[f"synthetic:{N}"], out=str(tmp_path / "ds"), views=4, image_size=64, workers=1)
    ).start()
    victim = None
    while job.poll(0.05):
        if victim is None and job.done >= 2 and job.workers and job.workers[0].inflight:
            victim = job.workers[0].proc
            victim.kill()  # as if Blender crashed (or the OOM killer struck) while rendering a model
    job.close()
    assert victim is not None and victim.wait() == -signal.SIGKILL
    assert job.rendered == N and job.skipped == 0  # the model in flight went to the next worker
    same_dataset(full, tmp_path / "ds")


def test_a_lost_frame_is_retried_in_a_fresh_worker_not_skipped(full, tmp_path, monkeypatch):
    """RELIABILITY.md J: a render error that is not the model's (a frame file gone from /dev/shm) sends the
    model to a fresh worker once, instead of recording it as skipped for good."""
    from voxlift.render_job import RenderJob, RenderOptions
    from voxlift.render_protocol import list_records

    victim = list_records([f"synthetic:{N}"])[3].id
    marker = tmp_path / "fault-fired"
    monkeypatch.setenv("VOXLIFT_RENDER_FAULT", f"{victim}:{marker}")
    logged = []
    job = RenderJob(
        RenderOptions(
            sources=[f"synthetic:{N}"], out=str(tmp_path / "ds"), views=4, image_size=64, workers=1
        ),
        log=logged.append,
    ).start()
    spawned_before = None
    while job.poll(0.05):
        if spawned_before is None and marker.exists():
            spawned_before = job._spawned
    job.close()
    assert marker.exists()  # the fault fired
    assert any(victim in m and "retrying" in m for m in logged), logged
    assert job._spawned > spawned_before  # the retry went to a new worker
    assert job.rendered == N and job.skipped == 0
    same_dataset(full, tmp_path / "ds")


def test_box_filter_averages_premultiplied_gray_over_white():
    from voxlift.blender.render import BACKGROUND, downsample

    rgba = np.zeros((1, 4, 4, 4), np.uint8)
    rgba[0, 0, 0] = rgba[0, 0, 1] = (100, 100, 100, 255)  # half of the top-left 2x2 block: gray 100
    rgba[0, 2:, 2:] = (200, 200, 200, 255)  # the bottom-right block fully covered
    rgba[0, 2, 0] = (50, 60, 70, 0)  # colour under zero alpha must not leak
    gray, alpha = downsample(rgba, 2)
    assert alpha.tolist() == [[[128, 0], [0, 255]]]
    assert gray[0, 0, 0] == round((100 + BACKGROUND) / 2) and gray[0, 1, 1] == 200
    assert gray[0, 0, 1] == gray[0, 1, 0] == BACKGROUND
