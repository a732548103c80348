"""Pulumi program (``Pulumi.yaml`` main: ``infra/``): everything comes from ``topology``."""

import sys
from pathlib import Path

_INFRA = Path(__file__).resolve().parent
_ROOT = _INFRA.parent
# Pulumi runs this folder as a script, which puts infra/ itself first on sys.path: take it
# off (its modules must not shadow installed packages) and put the repository root on.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _INFRA]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from infra.settings import StackSettings  # noqa: E402
from infra.stack import build_stack, export_outputs  # noqa: E402

export_outputs(build_stack(StackSettings.from_config()))
