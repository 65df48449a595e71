"""once-for-all's side of the search-speed comparison, and the accuracy function both sides share.

Benchmark-only: imports the ``ofa`` package (once-for-all's own code, the ``ref`` extra), which
latkit's product code never does.

- ``ofa_note10_latency(dir)``: once-for-all's tutorial latency model over the Note10 YAML tables
  (``ofa.tutorial.latency_table.LatencyEstimator.predict_network_latency_given_spec``, one table per
  resolution, each entry's ``mean``), wrapped as the ``efficiency_predictor`` that
  ``ofa.nas.search_algorithm.EvolutionFinder`` calls (``get_efficiency(arch_dict)``). The tutorial's
  ``LatencyEstimator`` reads its file with ``yaml.load(fp)``, which PyYAML 6 refuses without a
  loader; the estimator is built here with the same file read by ``yaml.safe_load`` instead.
- ``seeded_mlp(resolutions, space)``: once-for-all's ``AccuracyPredictor``
  (``ofa.nas.accuracy_predictor``, 400 x 3 MLP over ``MobileNetArchEncoder`` one-hots) whose
  weights come from ``torch.manual_seed(0)`` and 300 deterministic Adam steps (batches of 200)
  over 2,000 seeded subnets, fitted to ``proxy_top1`` (76 + 3.6 ln(MACs / 200M)), instead of once-for-all's
  pretrained file (a download). Raw seeded weights make a rugged random function with no unit;
  fitted, the MLP has the shape of an accuracy predictor (grows with capacity, percent-like
  numbers, its own smooth errors). It is not real accuracy: "points" below are points of this
  function, the same work and the same answers on both sides.
- ``MlpAccuracy``: the same torch module as a latkit ``AccuracySource`` (archs, or the search's gene
  arrays through ``top1_genes``, to the same one-hot features, one forward pass per batch);
  ``check_same_function`` compares both paths with once-for-all's ``predict_acc`` on random
  subnets.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import random
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_TV = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
       "torchvision.datasets")


def _install_torchvision_stand_in() -> None:
    """As tests/supernet/ofa_ref.py: ``ofa.utils`` subclasses torchvision classes at import time."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return
    for name in _TV:
        mod = types.ModuleType(name)

        def __getattr__(attr: str, mod: types.ModuleType = mod) -> type:  # noqa: N807 -- PEP 562
            if attr.startswith("__"):
                raise AttributeError(attr)
            cls = type(attr, (), {})
            setattr(mod, attr, cls)
            return cls

        mod.__getattr__ = __getattr__  # type: ignore[method-assign]
        mod.__path__ = []
        sys.modules.setdefault(name, mod)
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.modules["torchvision"].datasets = sys.modules["torchvision.datasets"]
    sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]


def require_ofa() -> None:
    if importlib.util.find_spec("ofa") is None:
        raise SystemExit("once-for-all's package is not installed: pip install -e '.[ref]' "
                         "(make deps-test does)")
    _install_torchvision_stand_in()


def _tutorial_module(name: str) -> types.ModuleType:
    """``ofa/tutorial/<name>.py`` alone: the package's ``__init__`` imports its ImageNet helpers,
    which need ``gdown`` (a downloader) that the benchmark has no use for."""
    spec = importlib.util.find_spec("ofa")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "tutorial" / f"{name}.py"
    mod_spec = importlib.util.spec_from_file_location(f"ofa_tutorial_{name}", path)
    assert mod_spec is not None and mod_spec.loader is not None
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


class Note10Latency:
    """once-for-all's tutorial latency model, as ``EvolutionFinder``'s efficiency predictor."""

    def __init__(self, yaml_dir: Path, resolutions: Sequence[int]) -> None:
        require_ofa()
        import yaml

        LatencyEstimator = _tutorial_module("latency_table").LatencyEstimator  # noqa: N806

        self.tables = {}
        for r in resolutions:
            est = LatencyEstimator.__new__(LatencyEstimator)
            with open(Path(yaml_dir) / f"{r}_lookup_table.yaml") as f:
                est.lut = yaml.safe_load(f)
            self.tables[r] = est

    def get_efficiency(self, arch_dict: dict[str, Any]) -> float:
        spec = {"ks": arch_dict["ks"], "e": arch_dict["e"], "d": arch_dict["d"],
                "r": [arch_dict["image_size"]]}
        return self.tables[arch_dict["image_size"]].predict_network_latency_given_spec(spec)


def to_ofa_dict(arch: Any) -> dict[str, Any]:
    """A latkit ``ArchConfig`` as once-for-all's arch dict (inactive blocks padded with 3)."""
    ks, e = [], []
    for k_s, e_s in zip(arch.ks, arch.e, strict=True):
        ks += list(k_s) + [3] * (4 - len(k_s))
        e += list(e_s) + [3] * (4 - len(e_s))
    return {"ks": ks, "e": e, "d": [len(k) for k in arch.ks], "image_size": arch.r}


def proxy_top1(space: Any, arch: Any) -> float:
    """A smooth stand-in for ImageNet top-1 of once-for-all's w1.2 subnets: 76 + 3.6 ln(MACs/200M)
    (about once-for-all's published 76% at 200M and 80% at 600M MACs); not a real accuracy."""
    return 76.0 + 3.6 * math.log(space.macs(arch) / 2e8)


def seeded_mlp(resolutions: Sequence[int], space: Any, steps: int = 300) -> Any:
    """once-for-all's AccuracyPredictor, weights seeded then fitted to ``proxy_top1`` (see above)."""
    require_ofa()
    import torch
    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder

    torch.manual_seed(0)
    enc = MobileNetArchEncoder(image_size_list=list(resolutions), ks_list=[3, 5, 7],
                               expand_list=[3, 4, 6], depth_list=[2, 3, 4])
    model = AccuracyPredictor(enc, hidden_size=400, n_layers=3, device="cpu")
    rng = random.Random(0)
    archs = [space.sample(rng, list(resolutions)) for _ in range(2000)]
    x = torch.from_numpy(MlpAccuracy(model, space).features(archs))
    y = torch.tensor([proxy_top1(space, a) for a in archs], dtype=torch.float32)
    with torch.no_grad():
        model.base_acc.fill_(float(y.mean()))
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if n != "base_acc"], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(archs), (200,), generator=gen)
        opt.zero_grad()
        loss = torch.mean((model(x[idx]) - y[idx]) ** 2)
        loss.backward()
        opt.step()
    with torch.no_grad():
        model.fit_rmse = float(torch.mean((model(x) - y) ** 2)) ** 0.5
    return model


class MlpAccuracy:
    """The seeded once-for-all MLP as a latkit accuracy source (``AccuracySource``)."""

    def __init__(self, model: Any, space: Any) -> None:
        self.model = model
        self.space = space.name
        enc = model.arch_encoder
        self._r_col = dict(enc.r_info["val2id"])
        self._k_col = enc.k_info["val2id"]
        self._e_col = enc.e_info["val2id"]
        self._stage_cols: dict[tuple[int, tuple, tuple], list[int]] = {}
        self.n_dim = enc.n_dim

    def _cols(self, s: int, ks: tuple, es: tuple) -> list[int]:
        key = (s, ks, es)
        cols = self._stage_cols.get(key)
        if cols is None:
            cols = [self._k_col[4 * s + b][k] for b, k in enumerate(ks)] + \
                   [self._e_col[4 * s + b][e] for b, e in enumerate(es)]
            self._stage_cols[key] = cols
        return cols

    def features(self, archs: Sequence[Any]) -> np.ndarray:
        """once-for-all's ``arch2feature`` of every arch, as one matrix."""
        cols: list[int] = []
        counts = []
        r_col, stage_cols, get = self._r_col, self._stage_cols, self._cols
        for a in archs:
            n0 = len(cols)
            cols.append(r_col[a.r])
            for s, (ks, es) in enumerate(zip(a.ks, a.e, strict=True)):
                c = stage_cols.get((s, ks, es))
                cols += c if c is not None else get(s, ks, es)
            counts.append(len(cols) - n0)
        x = np.zeros((len(archs), self.n_dim), dtype=np.float32)
        x[np.repeat(np.arange(len(archs)), counts), cols] = 1.0
        return x

    def features_genes(self, g: Any) -> np.ndarray:
        """The same matrix from gene arrays (``latkit.search.genes.Genes``), without archs."""
        if not hasattr(self, "_kcol"):
            enc = self.model.arch_encoder
            nb = enc.max_n_blocks
            self._kcol = np.zeros((nb, 8), dtype=np.intp)
            self._ecol = np.zeros((nb, 8), dtype=np.intp)
            for i in range(nb):
                for v, c in enc.k_info["val2id"][i].items():
                    self._kcol[i, v] = c
                for v, c in enc.e_info["val2id"][i].items():
                    self._ecol[i, v] = c
            self._rcol = np.zeros(max(self._r_col) + 1, dtype=np.intp)
            for r, c in self._r_col.items():
                self._rcol[r] = c
        n, S, B = g.k.shape
        slot = np.arange(S * B)[None, :]
        active = (np.arange(B)[None, None, :] < g.d[:, :, None]).reshape(n, S * B)
        rows = np.broadcast_to(np.arange(n)[:, None], (n, S * B))[active]
        x = np.zeros((n, self.n_dim), dtype=np.float32)
        x[np.arange(n), self._rcol[g.r]] = 1.0
        x[rows, self._kcol[slot, g.k.reshape(n, S * B)][active]] = 1.0
        x[rows, self._ecol[slot, g.e.reshape(n, S * B)][active]] = 1.0
        return x

    def top1_genes(self, g: Any) -> np.ndarray:
        """``top1`` of gene rows: the search calls this when a source offers it."""
        import torch

        with torch.no_grad():
            y = self.model(torch.from_numpy(self.features_genes(g)))
        return y.reshape(-1).double().numpy()

    def top1(self, archs: Sequence[Any]) -> np.ndarray:
        import torch

        if not archs:
            return np.zeros(0)
        with torch.no_grad():
            y = self.model(torch.from_numpy(self.features(archs)))
        return y.reshape(-1).double().numpy()

    def candidates(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": "once-for-all AccuracyPredictor MLP, seeded weights (benchmark)"}


def check_same_function(model: Any, space: Any, resolutions: Sequence[int], n: int = 500) -> float:
    """Largest |latkit-side - once-for-all-side| accuracy over ``n`` random subnets."""
    import torch

    rng = random.Random(7)
    archs = [space.sample(rng, list(resolutions)) for _ in range(n)]
    with torch.no_grad():
        theirs = model.predict_acc([to_ofa_dict(a) for a in archs]).double().numpy()
    from latkit.search.genes import GeneSpace

    src = MlpAccuracy(model, space)
    ours = src.top1(archs)
    by_genes = src.top1_genes(GeneSpace(space).encode(archs))
    return float(max(np.max(np.abs(ours - theirs)), np.max(np.abs(by_genes - theirs))))


def check_same_latency(lat_ofa: Note10Latency, source: Any, space: Any,
                       resolutions: Sequence[int], n: int = 500) -> float:
    """Largest relative |latkit table - once-for-all table| latency over ``n`` random subnets."""
    rng = random.Random(8)
    archs = [space.sample(rng, list(resolutions)) for _ in range(n)]
    theirs = np.array([lat_ofa.get_efficiency(to_ofa_dict(a)) for a in archs])
    ours = source.predict_ms(archs)
    return float(np.max(np.abs(ours - theirs) / theirs))


def run_ofa(lat_ofa: Note10Latency, model: Any, budget_ms: float, population: int,
            generations: int, seed: int) -> tuple[float, float, dict[str, Any]]:
    """once-for-all's ``EvolutionFinder`` (ofa.nas.search_algorithm): seconds, best top-1, arch.

    Its hyper-parameters are the tutorial's: mutate probability 0.1 (resolution too), 25% parents,
    50% mutations. Seeds Python's and numpy's global generators, which it draws from.
    """
    import time

    from ofa.nas.search_algorithm import EvolutionFinder

    random.seed(seed)
    np.random.seed(seed)
    finder = EvolutionFinder(lat_ofa, model, arch_mutate_prob=0.1, resolution_mutate_prob=0.1,
                             population_size=population, max_time_budget=generations,
                             parent_ratio=0.25, mutation_ratio=0.5)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every 100 generations
        _, best = finder.run_evolution_search(budget_ms, verbose=False)
    seconds = time.perf_counter() - t0
    return seconds, float(best[0]), best[1]
