"""Shared fixtures. The reference data lives in ../shared/data beside the checkout."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    for cand in (REPO.parent / "shared" / "data", REPO / "shared" / "data"):
        if cand.is_dir():
            return cand
    return REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _latkit_home(tmp_path_factory, monkeypatch):
    """Every test runs with its own empty LATKIT_HOME: no user profile or lock of the machine leaks in."""
    monkeypatch.setenv("LATKIT_HOME", str(tmp_path_factory.mktemp("latkit-home")))
