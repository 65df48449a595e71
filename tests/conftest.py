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


@pytest.fixture()
def folder_checkpoint(tmp_path):
    """``make(space, resolutions=None)``: a random-weight 2-class supernet checkpoint of ``space``
    whose config names a tiny image folder (two classes of six seeded 40x40 PNGs) and, if given,
    its training resolutions; returns (checkpoint, folder)."""
    def make(space, resolutions=None):
        import numpy as np
        import torch
        from PIL import Image

        from latkit.supernet.model import ElasticMobileNetV3

        root = tmp_path / "ds"
        rng = np.random.default_rng(0)
        for c in ("a", "b"):
            (root / c).mkdir(parents=True)
            for i in range(6):
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
        torch.manual_seed(0)
        m = ElasticMobileNetV3(space, n_classes=2, kernel_transform=False)
        ckpt = tmp_path / "c.pt"
        config = {"data": str(root)}
        if resolutions is not None:
            config["resolutions"] = list(resolutions)
        torch.save(m.checkpoint_dict(kernel_transform=False, config=config), ckpt)
        return ckpt, root

    return make
