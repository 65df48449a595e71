"""once-for-all's accuracy predictor (``--model mlp``): its encoding against once-for-all's own
encoder, repeatable fits, the JSON round trip, tampered files, the CLI, and that it learns."""

from __future__ import annotations

import base64
import csv
import inspect
import json
import random

import numpy as np
import pytest
from sklearn.base import clone

from latkit.cli import main
from latkit.errors import NotFittedError, PredictorError
from latkit.predictors.accuracy import heldout_metrics, heldout_split
from latkit.predictors.features import ArchFeaturizer
from latkit.predictors.io import load_predictor, save_predictor
from latkit.predictors.mlp import MLPPredictor, encoding_width, ofa_encoding
from latkit.supernet.space import get_space
from tests.supernet.ofa_ref import install_torchvision_stand_in

OFA = get_space("ofa-mbv3-w1.0")


def _ofa_encoder(space):
    pytest.importorskip("ofa", reason="once-for-all's package (the ref extra; make deps-test installs it)")
    install_torchvision_stand_in()
    from ofa.nas.accuracy_predictor.arch_encoder import MobileNetArchEncoder

    c = space.conf
    return MobileNetArchEncoder(image_size_list=list(c.resolutions),
                                ks_list=sorted({k for ks in c.ks_choices for k in ks}),
                                expand_list=list(c.e_choices), depth_list=list(c.d_choices))


def signal(space, a):
    """A known monotone accuracy: more expansion, larger kernels, deeper and larger is better."""
    return (40.0 + 0.4 * sum(map(sum, a.e)) + 0.15 * sum(map(sum, a.ks)) + 0.08 * (a.r - 128)
            - 0.05 * sum(a.d) ** 1.5)


def table(space, n, seed=0, noise=0.3):
    rng = random.Random(seed)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(n)))
    noise_rng = np.random.default_rng(seed)
    y = np.array([signal(space, a) for a in archs]) + noise_rng.normal(0, noise, len(archs))
    return archs, y


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "compofa-w1.0"])
def test_encoding_is_once_for_alls(name):
    space = get_space(name)
    enc = _ofa_encoder(space)
    rng = random.Random(3)
    archs = [space.sample(rng) for _ in range(200)] + [space.min_arch(), space.max_arch()]
    ours = ofa_encoding(ArchFeaturizer(space), archs)
    theirs = []
    for a in archs:
        d = a.to_ofa_dict()
        theirs.append(enc.arch2feature({**d, "image_size": d["r"]}))
    assert ours.shape == (len(archs), enc.n_dim) == (len(archs), encoding_width(ArchFeaturizer(space)))
    assert np.array_equal(ours, np.asarray(theirs, dtype=np.float32))


def test_fit_is_repeatable_and_round_trips(tmp_path):
    archs, y = table(OFA, 120)
    est = MLPPredictor(OFA.name, epochs=20, random_state=1)
    # the estimator contract (STYLE 7): __init__ only stores, clone works, unfitted is an error
    params = est.get_params(deep=False)
    assert set(params) == set(inspect.signature(MLPPredictor.__init__).parameters) - {"self"}
    assert not [k for k in vars(est) if k.endswith("_")]
    assert clone(est).get_params(deep=False) == params
    with pytest.raises(NotFittedError):
        est.predict(archs[:2])
    a = est.fit(archs, y)
    assert a is est and a.meta_["target"] == "top1" and a.meta_["n_train"] == len(archs)
    b = MLPPredictor(OFA.name, epochs=20, random_state=1).fit(archs, y)
    c = MLPPredictor(OFA.name, epochs=20, random_state=2).fit(archs, y)
    pa = a.predict(archs)
    assert np.array_equal(pa, b.predict(archs))
    assert np.array_equal(a.predict([str(x) for x in archs[:5]]), pa[:5])
    assert np.array_equal(a.predict([x.to_ofa_dict() for x in archs[:5]]), pa[:5])
    assert not np.allclose(pa, c.predict(archs))
    assert a.base_acc_ == pytest.approx(y.mean() / 100, rel=1e-6)
    path = save_predictor(a, tmp_path / "mlp.json")
    back = load_predictor(path)
    assert isinstance(back, MLPPredictor) and back.epochs == 20
    assert np.array_equal(back.predict(archs), pa)
    with pytest.raises(PredictorError, match="predicts top1"):
        MLPPredictor(OFA.name, target="latency_ms").fit(archs, y)


def _tamper(doc, how):
    layer = doc["state"]["layers"][1]["weight"]
    if how == "nan":
        w = np.frombuffer(base64.b64decode(layer["float32"]), dtype="<f4").copy()
        w[7] = np.nan
        layer["float32"] = base64.b64encode(w.tobytes()).decode()
    elif how == "short":
        layer["float32"] = layer["float32"][:-8]
    elif how == "shape":
        layer["shape"] = [400, 401]
    elif how == "base64":
        layer["float32"] = "*" + layer["float32"][1:]
    elif how == "layers":
        doc["state"]["layers"].pop()


@pytest.mark.parametrize("how,needle", [("nan", "non-finite"), ("short", "bytes"),
                                        ("shape", "shape must be"), ("base64", "base64"),
                                        ("layers", "hidden layers")])
def test_tampered_weights_are_refused(tmp_path, capsys, how, needle):
    archs, y = table(OFA, 40)
    path = save_predictor(MLPPredictor(OFA.name, epochs=2).fit(archs, y), tmp_path / "mlp.json")
    doc = json.loads(path.read_text())
    _tamper(doc, how)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(PredictorError, match=needle):
        load_predictor(bad)
    code = main(["predict", "--predictor", str(bad), "--arch", str(archs[0])])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1


def test_lat_fit_mlp_cli(tmp_path, capsys):
    archs, y = table(OFA, 80, seed=5)
    acc = tmp_path / "acc.csv"
    with acc.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "top1", "space"])
        w.writerows([str(a), f"{v:.3f}", OFA.name] for a, v in zip(archs, y, strict=True))
    out = tmp_path / "acc_mlp.json"
    assert main(["fit", "--target", "top1", "--model", "mlp", "--measurements", str(acc),
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("accuracy predictor (mlp) on 80 subnets: held-out Spearman")
    pred = load_predictor(out)
    assert pred.kind == "mlp" and pred.meta_["metrics"]["holdout"]["n"] == 16
    from latkit.search.protocols import accuracy_source  # search reads it as --accuracy FILE.json

    top1 = accuracy_source(str(out), OFA.name).top1(archs[:3])
    assert np.array_equal(top1, pred.predict(archs[:3]))
    assert main(["train", "fit-accuracy", "--space", OFA.name, "--accuracy", str(acc), "-o",
                 str(tmp_path / "b.json"), "--model", "mlp"]) == 0
    assert np.array_equal(load_predictor(tmp_path / "b.json").predict(archs), pred.predict(archs))
    lat = tmp_path / "lat.csv"
    lat.write_text("arch,latency_ms\n" + "".join(f"{a},{1 + i % 7}\n" for i, a in enumerate(archs)))
    code = main(["fit", "--space", OFA.name, "--measurements", str(lat), "--model", "mlp",
                 "-o", str(tmp_path / "lat.json")])
    err = capsys.readouterr().err
    assert code == 2 and "predicts top1" in err


def test_mlp_learns_a_monotone_signal():
    """Held-out Spearman on a table with a known signal: the recipe must learn, not just fit."""
    archs, y = table(OFA, 400, seed=11)
    train, test = heldout_split(len(archs), seed=0)
    m = heldout_metrics(OFA, archs, y, train, test, model="mlp", seed=0)
    assert m["n_test"] == 80 and m["spearman_heldout"] > 0.8, m
