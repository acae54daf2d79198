"""Generate Variations: N jobs of the same settings with seeds base, base + 1, ... on the one job timer. Each
finished variation is kept as an image `<target> variation N` (packed), and the grid `<target> (variations)` shows
them side by side, numbered, in the image editor; the artist picks one, and it becomes a result in the target's
history (operators.py). The target itself is never written to."""

from __future__ import annotations

import json

import bpy

from ..job_tracker import Job, Key
from ..naming import variation_name, variations_grid_name
from ..spec_builder import BuiltJob
from ..variations import variations_grid
from .images import load_png, mark_helper, new_image, read_rgba, show_in_editors, size_of, write_rgba
from .jobs import TRACKER, StatusView, ensure_timer, poll
from .paths import file_stem, user_dir, write_file

KIND = "variation"


def prefix(target: bpy.types.Image) -> Key:
    return (KIND, target.name)


def _where(job: Job) -> tuple[bpy.types.Image, int]:
    return bpy.data.images[job.key[1]], int(job.key[2])


class VariationView(StatusView):
    def status(self, job: Job) -> bpy.types.PropertyGroup:
        target, index = _where(job)
        return target.regia_variations[index].status

    def name(self, job: Job) -> str:
        return f"variation {int(job.key[2]) + 1}"

    def alive(self, job: Job) -> bool:
        target = bpy.data.images.get(job.key[1])
        return target is not None and int(job.key[2]) < len(target.regia_variations)

    def done(self, job: Job, png: bytes) -> str:
        target, index = _where(job)
        name = variation_name(target.name, index + 1)
        path = user_dir("variations") / f"{file_stem(name)}.png"
        write_file(path, png)
        image = mark_helper(load_png(path, name, bpy.data.images.get(name)), "variation", target.name)
        image.pack()  # kept in the .blend until the artist picks one
        image["regia_spec"] = _spec_json(job)
        image["regia_settings"] = job.data
        item = target.regia_variations[index]
        item.image = image
        show_grid(target)
        return f"Done: variation {index + 1} (seed {item.seed}) in {job.seconds:.1f} s"


def _spec_json(job: Job) -> str:
    return json.dumps(job.spec, sort_keys=True)


VIEW = VariationView()


def label(item: bpy.types.PropertyGroup) -> str:
    """What tells a variation from the others: its preset, or its seed."""
    return item.preset.title() if item.preset else f"seed {item.seed}"


def show_grid(target: bpy.types.Image) -> bpy.types.Image:
    """(Re)draw `<target> (variations)`: every variation so far, numbered with its seed, and show it."""
    items = list(target.regia_variations)
    size = next((size_of(item.image) for item in items if item.image is not None), size_of(target))
    images = [read_rgba(item.image) if item.image is not None else None for item in items]
    grid = variations_grid(images, [label(item) for item in items], size)
    name = variations_grid_name(target.name)
    image = bpy.data.images.get(name)
    height, width = grid.shape[:2]
    if image is None or size_of(image) != (width, height):
        if image is not None:
            bpy.data.images.remove(image)
        image = mark_helper(new_image(name, width, height, (0, 0, 0, 1), alpha=False), "variations", target.name)
    pixels = read_rgba(image)
    pixels[..., :3], pixels[..., 3] = grid, 1.0
    write_rgba(image, pixels)
    show_in_editors(image, replacing={target.name, name})
    return image


def submit(
    target: bpy.types.Image, built: BuiltJob, settings_json: str, seeds: list[int], presets: list[str] | None = None
) -> None:
    """Queue one job per seed (and, with `presets`, per preset: the same seed each); earlier variations (not picked)
    are forgotten."""
    cancel(target)
    target.regia_variations.clear()
    for index, seed in enumerate(seeds):
        item = target.regia_variations.add()
        item.seed = seed
        spec = {**built.spec, "seed": seed}
        if presets is not None:
            item.preset = spec["preset"] = presets[index]
        TRACKER.submit((KIND, target.name, str(index)), VIEW, spec, built.blobs, settings_json)
    ensure_timer()
    poll()


def cancel(target: bpy.types.Image) -> bool:
    return TRACKER.cancel(prefix(target)) > 0


def is_running(target: bpy.types.Image) -> bool:
    return TRACKER.is_running(prefix(target))
