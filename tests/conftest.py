"""Fixtures shared by all tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from posecast import paths


def shared_path(relative: str) -> Path:
    """A file or folder under ../shared (or $POSECAST_SHARED); skips the test when it is absent."""
    path = paths.shared_dir() / relative
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set POSECAST_SHARED or place ../shared beside the checkout)")
    return path


def model_path(path: Path, build: str) -> Path:
    """A committed model file; fails (not skips) when missing, since the weights ship with the project."""
    assert path.is_file(), f"{path} is missing: build it with `{build}`"
    return path
