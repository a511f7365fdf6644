"""Classification stage: language, category, sentiment, urgency, personal data, priority, SLA.

Nothing is loaded at import time: `pipeline.Classifier` loads its model and taxonomy when it
is constructed (in the service's lifespan).

The hot modules are compiled with mypyc at install time (`hatch_build.py`) into `_compiled/`,
which comes first on this package's path only while every source it was compiled from is
unchanged: an edited module runs from its source (all of them do, with a warning) until the
next `make install`. OMNIROUTE_CLASSIFIER_PURE=1 runs the sources whatever is compiled.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

COMPILED_DIR = Path(__file__).parent / "_compiled"


def compiled_is_fresh(compiled: Path, sources: Path) -> bool:
    """Whether `compiled` holds a build of the modules in `sources` as they are now."""
    try:
        manifest = json.loads((compiled / "sources.json").read_text())
        return all(
            hashlib.sha256((sources / f"{name}.py").read_bytes()).hexdigest() == digest
            for name, digest in manifest["sources"].items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _use_compiled() -> bool:
    if os.environ.get("OMNIROUTE_CLASSIFIER_PURE") == "1" or not COMPILED_DIR.is_dir():
        return False
    if compiled_is_fresh(COMPILED_DIR, COMPILED_DIR.parent):
        return True
    warnings.warn(
        "omniroute.classifier: the compiled modules are older than their sources, which run "
        "instead (slower); `make install` compiles them again",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


# True when the compiled modules are the ones imported.
COMPILED = _use_compiled()
if COMPILED:
    __path__.insert(0, str(COMPILED_DIR))
