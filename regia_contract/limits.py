"""Bounds and defaults that both sides check: the add-on before it sends, the engine when it validates."""

from __future__ import annotations

# ---- a job spec ---------------------------------------------------------------------------------------------------
MIN_SIDE, MAX_SIDE = 16, 4096  # canvas pixels a side (an engine server may allow less: --max-side)
DEFAULT_SIDE = 512
MAX_SEED = 2**32 - 1
MAX_STEPS, DEFAULT_STEPS = 100_000, 200
MAX_GUIDES = 64  # per region, and top level
MAX_REGIONS = 64
MAX_NAME = 64  # region and shot names
MAX_WEIGHT = 100.0  # |weight| of any guide
MAX_PALETTE = 64  # colours
MAX_PROMPT = 1000  # characters of a text guide
MAX_FEATHER = 256.0  # pixels
MAX_STRENGTH, DEFAULT_STRENGTH = 4.0, 1.0  # embolden
DEFAULT_PREVIEW_EVERY = 10
DEFAULT_LR = 0.05
MAX_CFG, DEFAULT_CFG = 30.0, 7.0  # classifier-free guidance scale of the diffusion generator
DEFAULT_DIFFUSION_STEPS = 30

# ---- a storyboard file --------------------------------------------------------------------------------------------
MAX_SHOTS = 999  # shot files are numbered with three digits
MAX_STYLE_IMAGES = 8
MAX_SHOT_GUIDES = 48  # with the shared guides (at most 8 + 1 + 4) a shot's job stays within MAX_GUIDES
MAX_SHOT_TEXT = 400  # a shot's description and negative
MAX_STYLE_TEXT = 500  # the style prompt and negative
MAX_STORYBOARD_NAME = 200
FRAME_LIMIT = 1_048_574  # Blender's frame range
DEFAULT_STYLE_WEIGHT = 1.0
DEFAULT_PALETTE_WEIGHT = 0.3
