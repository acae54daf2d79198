"""Storyboards: many shots, one image each, generated in one shared style so that they read as one story.

- `format`: the storyboard file (version 1), validated with errors that name storyboard fields;
- `expand`: a shot as an ordinary JobSpec, by the contract's rules (regia_contract/storyboard.py), which the
  add-on uses too;
- `render`: every shot in one process (`python -m engine storyboard`), numbered shot PNGs, a contact sheet and
  storyboard.json.

On the engine server the add-on submits each shot as its own job instead.
"""

from .expand import ShotJobs, job_field, shot_seed, shot_spec
from .format import Shot, Storyboard, load_storyboard_file, parse_storyboard_json, validate_storyboard
from .render import ShotReport, render_storyboard, safe_name, shot_file, validate_storyboard_file

__all__ = [
    "Shot",
    "ShotJobs",
    "ShotReport",
    "Storyboard",
    "job_field",
    "load_storyboard_file",
    "parse_storyboard_json",
    "render_storyboard",
    "safe_name",
    "shot_file",
    "shot_seed",
    "shot_spec",
    "validate_storyboard",
    "validate_storyboard_file",
]
