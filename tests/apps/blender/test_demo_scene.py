"""`python -m apps.blender.demo_scene`: the scene a first run of the app uses."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_writes_a_scene(tmp_path: Path, blender_installed: None) -> None:
    out = tmp_path / "sub" / "scene.blend"
    done = subprocess.run(
        [sys.executable, "-m", "apps.blender.demo_scene", str(out), "--frames", "2"],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    # A .blend, plain or zstd-compressed (Blender 3's "compress" option).
    assert out.read_bytes()[:7] == b"BLENDER" or out.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"


@pytest.mark.parametrize("resolution", ["9", "axb", "10x"])
def test_bad_resolution_exits_2(tmp_path: Path, resolution: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "apps.blender.demo_scene", str(tmp_path / "s.blend"),
         "--resolution", resolution],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "is not WIDTHxHEIGHT" in done.stderr
    assert not (tmp_path / "s.blend").exists()
