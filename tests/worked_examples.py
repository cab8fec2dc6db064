"""Loading a worked example (examples/<name>/<name>.py) in a test: the examples are scripts, not a
package, so each is loaded from its file under a module name of its own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"


def load_example(name: str) -> ModuleType:
    """The module of examples/<name>/<name>.py, registered as `<name>_example`."""
    spec = importlib.util.spec_from_file_location(f"{name}_example", ROOT / "examples" / name / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
