"""Our PyTorch ResNets are torchvision's, key for key: ``tools/check_torchvision_layout.py`` in its own venv.

torchvision is not installed in medbench's environment (importing it after TensorFlow crashes there), so
the tool runs with ``.venv-torchvision/bin/python`` and reports JSON; the test is skipped without that venv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "check_torchvision_layout.py"
PYTHON = Path(os.environ.get("MEDBENCH_TORCHVISION_PYTHON", ROOT / ".venv-torchvision" / "bin" / "python"))


@pytest.fixture(scope="module")
def report() -> dict:
    if not PYTHON.exists():
        pytest.skip(f"no torchvision environment at {PYTHON} (set MEDBENCH_TORCHVISION_PYTHON to another)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [str(PYTHON), str(TOOL), "--json", "--model", "resnet18", "--model", "resnet50"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.torchvision
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_same_state_dict_layout_and_logits_as_torchvision(report, name):
    (result,) = [r for r in report["results"] if r["model"] == name]
    assert result["same_layout"], result
    assert result["missing"] == result["unexpected"] == result["shape_mismatches"] == []
    assert result["params"] == result["torchvision_params"]
    assert result["identical_logits"], result["max_abs_logit_diff"]
    assert result["ok"]
