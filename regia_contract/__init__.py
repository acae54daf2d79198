"""The contract between Regia's add-on and its engine: what a job spec may hold, and how a storyboard becomes jobs.

Standard library only (no pydantic, no torch, no numpy), so Blender's own Python imports it as well as the engine's.
Both sides import it: the engine builds its pydantic validation on these kinds, limits and defaults, and expands
storyboards with these rules; the add-on builds specs and storyboard files with the same ones. Nothing here is
duplicated on either side.

- `kinds`: guide kinds (what each needs), region modes, generators, optimisers, schedules, seed rules.
- `limits`: bounds and defaults of every spec and storyboard field that both sides check.
- `storyboard`: the seed rule and the expansion of a storyboard shot into a job spec (plain dicts).
"""

SPEC_VERSION = 1
STORYBOARD_VERSION = 1
