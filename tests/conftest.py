"""Shared fixtures. The reference data lives in ../shared/data beside the checkout."""

import signal
from pathlib import Path

import pytest

# A runner that starts the suite from a background shell hands it SIGINT ignored (POSIX), and exec
# passes that on to every child: the Ctrl-C and kill tests would then fail or test nothing. Take
# SIGINT back (a handled signal is reset to the default in children).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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
