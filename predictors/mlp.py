"""once-for-all's accuracy predictor: an MLP over the one-hot arch encoding, beside the tree models.

Encoding (once-for-all's ``MobileNetArchEncoder.arch2feature``, ``ofa/nas/accuracy_predictor/
arch_encoder.py``): one float vector per arch, in this order

- a one-hot of the resolution over the space's resolutions;
- per block slot (stage-major: stage 1 blocks 1-4, stage 2 blocks 1-4, ...), a one-hot of the
  kernel size over the space's kernel sizes, zeros for a slot beyond the stage's depth;
- per block slot, in the same order, a one-hot of the expand ratio, zeros beyond the depth.

For ``ofa-mbv3-w1.0`` that is 25 + 20 x 3 + 20 x 3 = 145 columns, once-for-all's encoder with
``image_size_list`` 128..224 step 4, ``ks_list`` [3, 5, 7] and ``expand_list`` [3, 4, 6]; for
``compofa-w1.0`` its encoder with ``ks_list`` [3, 5] (the kernels the space has).

Net (its ``AccuracyPredictor``, ``acc_predictor.py``): ``n_layers`` hidden layers of
``hidden_size`` units (400 and 3), each Linear + ReLU, a Linear output without bias, plus a fixed
``base_acc`` set to the mean training target. Training follows once-for-all's authors' recipe
(targets top-1 / 100, in [0, 1]; Adam, lr 1e-3, weight decay 1e-4; MSE) with batches of 256 (the
default of its ``build_acc_data_loader``); its code publishes no epoch count, see
``defaults.MLP_PARAMS`` for ours. Training runs in torch on one thread (the matrices are small, and
one thread keeps a fit bit-for-bit repeatable for a seed); predicting is numpy on the stored float32
weights, so search never imports torch. Weights are stored in the predictor JSON as little-endian
float32, base64, with their shapes, and checked on load (shapes, sizes, finite values).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from latkit.errors import PredictorError
from latkit.predictors import defaults
from latkit.predictors.checks import expect_keys, expect_number
from latkit.predictors.features import ArchFeaturizer
from latkit.predictors.models import ArchPredictor

TOP1 = "top1"
#: top-1 is in percent; the net learns it in [0, 1], as once-for-all's does
TARGET_SCALE = 100.0
ENCODING = "ofa-onehot"


def ofa_encoding(featurizer: ArchFeaturizer, archs: Sequence[Any]) -> np.ndarray:
    """once-for-all's arch encoding (see the module docstring) of validated archs, (n, width) float32."""
    n = len(archs)
    R, K, E = len(featurizer.rvals), len(featurizer.kvals), len(featurizer.evals)
    slots = featurizer.n_stages * featurizer.max_depth
    out = np.zeros((n, encoding_width(featurizer)), dtype=np.float32)
    if n == 0:
        return out
    r_idx, k_idx, e_idx = featurizer._encode(archs)
    rows = np.arange(n)
    out[rows, r_idx] = 1.0
    k_idx, e_idx = k_idx.reshape(n, slots), e_idx.reshape(n, slots)
    active = k_idx >= 0
    ri, si = np.nonzero(active)
    out[ri, R + si * K + k_idx[ri, si]] = 1.0
    out[ri, R + slots * K + si * E + e_idx[ri, si]] = 1.0
    return out


def encoding_width(featurizer: ArchFeaturizer) -> int:
    slots = featurizer.n_stages * featurizer.max_depth
    return len(featurizer.rvals) + slots * (len(featurizer.kvals) + len(featurizer.evals))


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch  # noqa: PLC0415 -- torch only to train; predicting and lat --help stay torch-free

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tensor_to_json(a: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(a, dtype="<f4").tobytes()
    return {"shape": list(a.shape), "float32": base64.b64encode(data).decode("ascii")}


def _tensor_from_json(doc: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A float32 array of exactly ``shape`` from ``_tensor_to_json``'s output, all values finite."""
    expect_keys(doc, {"shape", "float32"}, where)
    if not isinstance(doc["shape"], list) or doc["shape"] != list(shape):
        raise PredictorError(f"{where}.shape must be {list(shape)}, found {doc['shape']!r}")
    if not isinstance(doc["float32"], str):
        raise PredictorError(f"{where}.float32 must be base64 text")
    try:
        raw = base64.b64decode(doc["float32"].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise PredictorError(f"{where}.float32 is not valid base64") from None
    want = 4 * int(np.prod(shape))
    if len(raw) != want:
        raise PredictorError(f"{where}.float32 holds {len(raw)} bytes; shape {list(shape)} needs {want}")
    a = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
    if not np.all(np.isfinite(a)):
        raise PredictorError(f"{where} holds non-finite weights")
    return a


class MLPPredictor(ArchPredictor):
    """once-for-all's accuracy predictor (arch -> top-1): an MLP over its one-hot arch encoding."""

    kind = "mlp"

    def __init__(self, space: Any = "ofa-mbv3-w1.0", target: str = TOP1,
                 hidden_size: int | None = None, n_layers: int | None = None,
                 epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, weight_decay: float | None = None,
                 random_state: int = 0) -> None:
        self.space = space
        self.target = target
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.random_state = random_state

    def _params(self) -> dict[str, Any]:
        if self.target != TOP1:
            raise PredictorError(f"the mlp predictor is once-for-all's accuracy predictor: it "
                                 f"predicts {TOP1}, not {self.target} (latency: lut, xgb, rf, ridge)")
        p = dict(defaults.MLP_PARAMS)
        for name in p:
            if getattr(self, name) is not None:
                p[name] = getattr(self, name)
        for name in ("hidden_size", "n_layers", "epochs", "batch_size"):
            if isinstance(p[name], bool) or not isinstance(p[name], int) or p[name] < 1:
                raise PredictorError(f"mlp {name} must be a positive integer, got {p[name]!r}")
        for name in ("learning_rate", "weight_decay"):
            v = expect_number(p[name], f"mlp {name}")
            if v < 0 or (name == "learning_rate" and v == 0):
                raise PredictorError(f"mlp {name} must be positive, got {v}")
        return p

    # ---- fit / predict ----------------------------------------------------------------------
    def _fit(self, archs: Sequence[Any], y: np.ndarray) -> None:
        import torch  # noqa: PLC0415 -- torch only to train; predicting stays numpy

        p = self._params()
        X = torch.from_numpy(ofa_encoding(self._featurizer(), archs))
        t = torch.from_numpy((y / TARGET_SCALE).astype(np.float32))
        base = float(t.mean())
        seed = int(self.random_state)
        with _torch_threads(1), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            dims = [X.shape[1]] + [p["hidden_size"]] * p["n_layers"]
            hidden = [torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)]
            head = torch.nn.Linear(dims[-1], 1, bias=False)
            net = torch.nn.Sequential(*[m for lin in hidden for m in (lin, torch.nn.ReLU())], head)
            opt = torch.optim.Adam(net.parameters(), lr=p["learning_rate"],
                                   weight_decay=p["weight_decay"])
            gen = torch.Generator().manual_seed(seed)
            n, bs = X.shape[0], p["batch_size"]
            net.train()
            loss = torch.zeros(())
            for _ in range(p["epochs"]):
                order = torch.randperm(n, generator=gen)
                for i in range(0, n, bs):
                    idx = order[i:i + bs]
                    opt.zero_grad(set_to_none=True)
                    loss = torch.nn.functional.mse_loss(net(X[idx]).squeeze(1) + base, t[idx])
                    loss.backward()
                    opt.step()
            self.layers_ = [(lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy())
                            for lin in hidden]
            self.output_ = head.weight.detach().numpy().copy()
        self.base_acc_ = base
        self.last_batch_mse_ = float(loss.detach())

    def _predict(self, archs: Sequence[Any]) -> np.ndarray:
        h = ofa_encoding(self._featurizer(), archs)
        if h.shape[1] != self.layers_[0][0].shape[1]:
            raise PredictorError(f"mlp expects {self.layers_[0][0].shape[1]} encoding columns, "
                                 f"{self.space} gives {h.shape[1]}")
        for w, b in self.layers_:
            h = np.maximum(h @ w.T + b, 0.0)
        return ((h @ self.output_.T)[:, 0].astype(float) + self.base_acc_) * TARGET_SCALE

    # ---- state ------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"encoding": ENCODING, "n_features": int(self.layers_[0][0].shape[1]),
                "layers": [{"weight": _tensor_to_json(w), "bias": _tensor_to_json(b)}
                           for w, b in self.layers_],
                "output": _tensor_to_json(self.output_), "base_acc": self.base_acc_,
                "target_scale": TARGET_SCALE, "last_batch_mse": self.last_batch_mse_,
                "n_train": self.n_train_}

    def set_state(self, state: dict[str, Any], where: str) -> None:
        expect_keys(state, {"encoding", "n_features", "layers", "output", "base_acc",
                            "target_scale", "last_batch_mse", "n_train"}, where)
        p = self._params()
        if state["encoding"] != ENCODING:
            raise PredictorError(f"{where}.encoding must be {ENCODING!r}, found {state['encoding']!r}")
        width = encoding_width(self._featurizer())
        if expect_number(state["n_features"], f"{where}.n_features") != width:
            raise PredictorError(f"{where}.n_features is {state['n_features']!r}, but once-for-all's "
                                 f"encoding of {self.space} has {width} columns")
        if expect_number(state["target_scale"], f"{where}.target_scale") != TARGET_SCALE:
            raise PredictorError(f"{where}.target_scale must be {TARGET_SCALE:g}")
        layers = state["layers"]
        if not isinstance(layers, list) or len(layers) != p["n_layers"]:
            raise PredictorError(f"{where}.layers must be a list of {p['n_layers']} hidden layers "
                                 "(params.n_layers)")
        h, prev, out = p["hidden_size"], width, []
        for i, layer in enumerate(layers):
            expect_keys(layer, {"weight", "bias"}, f"{where}.layers[{i}]")
            out.append((_tensor_from_json(layer["weight"], (h, prev), f"{where}.layers[{i}].weight"),
                        _tensor_from_json(layer["bias"], (h,), f"{where}.layers[{i}].bias")))
            prev = h
        self.layers_ = out
        self.output_ = _tensor_from_json(state["output"], (1, h), f"{where}.output")
        self.base_acc_ = expect_number(state["base_acc"], f"{where}.base_acc")
        self.last_batch_mse_ = expect_number(state["last_batch_mse"], f"{where}.last_batch_mse")
        n_train = expect_number(state["n_train"], f"{where}.n_train")
        if n_train < 1 or n_train != int(n_train):
            raise PredictorError(f"{where}.n_train must be a positive integer, found {n_train!r}")
        self.n_train_ = int(n_train)
