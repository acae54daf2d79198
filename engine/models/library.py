"""open_clip, imported without the optional libraries it pulls in that this engine does not use from it.

open_clip's package imports transformers (Hugging Face text towers, CoCa's generation) and timm (timm vision towers)
whenever they are installed, and both are: together 1-2 s of a CLIP job's start-up (bench/startup.py). The engine
refuses Hugging Face text towers (weights.py), and most towers are not timm's, so both are hidden while open_clip
imports: `None` in sys.modules makes its `try: import ...` fall to its `except ImportError` branch. A model with a
timm tower brings timm back (`with_timm`). Hiding only happens while transformers and timm are not imported yet, and
other code imports them under `LOCK` (`importing_optional`), so no thread ever finds them hidden.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

HIDDEN = ("transformers", "timm")
LOCK = threading.RLock()  # re-entrant: importing open_clip may import code that imports under it again


@contextlib.contextmanager
def importing_optional() -> Iterator[None]:
    """Hold this around a first import of transformers or timm, so it never meets them hidden."""
    with LOCK:
        yield


def open_clip() -> ModuleType:
    """The open_clip package, imported once, with the libraries in HIDDEN kept out of its import if not loaded yet."""
    with LOCK:
        if "open_clip" in sys.modules:
            return sys.modules["open_clip"]
        hidden = [name for name in HIDDEN if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # the documented "import fails" marker
        try:
            return importlib.import_module("open_clip")
        finally:
            for name in hidden:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]


def with_timm() -> None:
    """Make open_clip's timm adapter usable (a model with a timm vision tower): import timm and re-run the adapter's
    module, whose `import timm` found it hidden. Nothing happens when the adapter has timm already; when timm is not
    installed, open_clip says so itself when the model is built."""
    module = open_clip()
    adapter = module.timm_model
    if adapter.timm is not None:
        return
    with LOCK:
        try:
            importlib.import_module("timm")
        except ImportError:
            return
        # reload runs the module again in its own namespace, which the TimmModel class open_clip.model holds reads.
        importlib.reload(adapter)
