"""once-for-all's and CompOFA's released MobileNetV3 supernet files: key naming and conversion.

The files once-for-all's model zoo downloads (``ofa_mbv3_d234_e346_k357_w1.0``, ``..._w1.2``) and
CompOFA's releases are ``torch.save({"state_dict": ...})`` of once-for-all's ``OFAMobileNetV3``
(read here with ``weights_only=True``, like every checkpoint). Two key namings occur:

- released (old): blocks are ``blocks.N.mobile_inverted_conv.*``; current code: ``blocks.N.conv.*``;
- ``.bn.bn.``/``.bn.``, ``.conv.conv.weight``/``.conv.weight`` and ``.linear.linear.``/``.linear.``
  occur in both forms (once-for-all's own ``load_state_dict`` maps them).

``canonical_key`` folds both namings onto one (``blocks.N.conv.*``, single forms); the table built by
``_key_table(space)`` maps each canonical key onto latkit's ``ElasticMobileNetV3`` key (block
``1 + 4 s + b`` is latkit's stage s, block b). Width and class count are read from the tensors
(stem and first-block channels; classifier rows) and checked against the requested space.

Elastic kernel: depthwise weights are stored 7x7; once-for-all's 5x5 is the centre 5x5 through
``7to5_matrix`` (``F.linear``, one 25x25 matrix per layer shared by the channels), its 3x3 the
centre of that through ``5to3_matrix``. latkit's ``ElasticDepthwiseConv`` does exactly this with
``t7to5``/``t5to3``, so for the once-for-all spaces the matrices are copied as they are. CompOFA's
space has one fixed kernel per stage (3,5,3,3,5), so importing a file into ``compofa-w1.0`` bakes
the fixed kernel from the 7x7 weight: ``kernel_transform="centre"`` (the default for
``compofa-w1.0``) takes the centre crop, as CompOFA's evaluation script runs its networks (the
kernel transform off), which is how the accuracies CompOFA publishes were measured;
``kernel_transform="matrices"`` applies the matrices, as CompOFA's NAS script (and once-for-all's
code) does. For the once-for-all spaces the default is ``"matrices"``; ``"centre"`` there sets
the matrices to identity (once-for-all's ``KERNEL_TRANSFORM_MODE = None``).

``to_ofa_state_dict`` goes the other way (``lat train export-ofa``), in once-for-all's current
naming, which its ``OFAMobileNetV3.load_state_dict`` accepts; a CompOFA-space kernel k x k is
written at the centre of a zero 7x7 with identity matrices, so once-for-all's code computes the same
fixed kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from latkit.errors import TrainError
from latkit.supernet.layers import make_divisible
from latkit.supernet.space import SearchSpace, get_space

#: once-for-all's MobileNetV3 spaces latkit can hold a released file in.
OFA_SPACES = ("ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "compofa-w1.0")
KERNEL_TRANSFORMS = ("centre", "matrices")
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_N_BLOCKS = 4  # once-for-all's blocks per stage (max depth) in every MobileNetV3 space


def default_kernel_transform(space: str) -> str:
    """``centre`` for CompOFA's fixed-kernel space (its evaluation script), ``matrices`` otherwise."""
    return "centre" if get_space(space).is_coupled else "matrices"


def canonical_key(key: str) -> str:
    """One naming for both: ``.mobile_inverted_conv.`` -> ``.conv.``, doubled forms made single."""
    k = key.replace(".mobile_inverted_conv.", ".conv.")
    return k.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight").replace(
        ".linear.linear.", ".linear.")


def naming_of(keys) -> str:
    """``released`` (``blocks.N.mobile_inverted_conv.*``) or ``current`` (``blocks.N.conv.*``)."""
    return "released" if any(".mobile_inverted_conv." in k for k in keys) else "current"


def _key_table(space: SearchSpace) -> dict[str, str]:
    """canonical once-for-all key -> latkit ``ElasticMobileNetV3`` key, for every tensor of both."""
    t: dict[str, str] = {"first_conv.conv.weight": "stem.0.weight",
                         "blocks.0.conv.depth_conv.conv.weight": "first_block.depthwise.0.weight",
                         "blocks.0.conv.point_linear.conv.weight": "first_block.project.0.weight",
                         "final_expand_layer.conv.weight": "final_expand.0.weight",
                         "feature_mix_layer.conv.weight": "feature_mix.0.weight",
                         "classifier.linear.weight": "classifier.linear.weight",
                         "classifier.linear.bias": "classifier.linear.bias"}
    for b in _BN:
        t[f"first_conv.bn.{b}"] = f"stem.1.{b}"
        t[f"blocks.0.conv.depth_conv.bn.{b}"] = f"first_block.depthwise.1.{b}"
        t[f"blocks.0.conv.point_linear.bn.{b}"] = f"first_block.project.1.{b}"
        t[f"final_expand_layer.bn.{b}"] = f"final_expand.1.{b}"
    for s, st in enumerate(space.conf.stages):
        for j in range(space.max_depth):
            o, lk = f"blocks.{1 + _N_BLOCKS * s + j}.conv.", f"stages.{s}.{j}."
            t[o + "inverted_bottleneck.conv.weight"] = lk + "expand_conv.weight"
            t[o + "depth_conv.conv.weight"] = lk + "depthwise.weight"
            t[o + "point_linear.conv.weight"] = lk + "project.weight"
            t[o + "depth_conv.conv.7to5_matrix"] = lk + "depthwise.t7to5"
            t[o + "depth_conv.conv.5to3_matrix"] = lk + "depthwise.t5to3"
            for b in _BN:
                t[o + f"inverted_bottleneck.bn.{b}"] = lk + f"expand_bn.{b}"
                t[o + f"depth_conv.bn.{b}"] = lk + f"depthwise_bn.{b}"
                t[o + f"point_linear.bn.{b}"] = lk + f"project_bn.{b}"
            if st.se:
                for a, la in (("reduce", "reduce"), ("expand", "expand")):
                    t[o + f"depth_conv.se.fc.{a}.weight"] = lk + f"se.{la}_weight"
                    t[o + f"depth_conv.se.fc.{a}.bias"] = lk + f"se.{la}_bias"
    return t


# --------------------------------------------------------------------------------------------
# Recognising a file
# --------------------------------------------------------------------------------------------


def released_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    """The state dict of a released file (``{"state_dict": ...}`` or a bare state dict), else None."""
    sd = obj.get("state_dict") if isinstance(obj, Mapping) and "state_dict" in obj else obj
    if (isinstance(sd, Mapping) and sd and all(isinstance(k, str) for k in sd)
            and all(isinstance(v, torch.Tensor) for v in sd.values())):
        return dict(sd)
    return None


def describe_family(keys) -> str:
    """What kind of once-for-all network a set of (canonical) keys is, in words."""
    keys = set(keys)
    if any(k.startswith("input_stem.") for k in keys):
        return "a once-for-all ResNet supernet (input_stem.*, blocks.N.conv.conv1/conv2/conv3)"
    if "first_conv.conv.weight" in keys and not any(k.startswith("final_expand_layer.") for k in keys):
        return ("a once-for-all ProxylessNAS supernet (no final_expand_layer; feature_mix_layer "
                "with BatchNorm)")
    if any(k.startswith("final_expand_layer.") for k in keys):
        return "a once-for-all MobileNetV3 supernet"
    return f"a state dict of {len(keys)} tensors that is not a once-for-all network (e.g. {sorted(keys)[:2]})"


def _width_of(stem: int, first: int) -> str | None:
    for name in OFA_SPACES:
        sp = get_space(name)
        if (sp.stem_width, sp.first_block_width) == (stem, first):
            return f"{sp.conf.width_mult:.1f}"
    return None


def file_summary(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Width, class count, naming and family of a released state dict, read from its tensors."""
    canon = {canonical_key(k): v for k, v in sd.items()}
    out: dict[str, Any] = {"naming": naming_of(sd), "family": describe_family(canon)}
    stem, first = canon.get("first_conv.conv.weight"), canon.get("blocks.0.conv.point_linear.conv.weight")
    cls = canon.get("classifier.linear.weight")
    out["stem"] = int(stem.shape[0]) if stem is not None and stem.dim() == 4 else None
    out["first_block"] = int(first.shape[0]) if first is not None and first.dim() == 4 else None
    out["n_classes"] = int(cls.shape[0]) if cls is not None and cls.dim() == 2 else None
    out["width"] = _width_of(out["stem"], out["first_block"]) if out["stem"] else None
    return out


def _holds(s: Mapping[str, Any]) -> str:
    w = f"width {s['width']}" if s["width"] else "an unknown width"
    return (f"{s['family']} of {w} (stem {s['stem']} channels, first block {s['first_block']}) "
            f"and {s['n_classes']} classes, in once-for-all's {s['naming']} key naming")


# --------------------------------------------------------------------------------------------
# Released file -> latkit checkpoint
# --------------------------------------------------------------------------------------------


def _fixed_kernel(w7: torch.Tensor, k: int, mats: Mapping[str, torch.Tensor], transform: bool
                  ) -> torch.Tensor:
    """once-for-all's active k x k filter of a stored (max-size) depthwise weight."""
    w, cur = w7, w7.shape[-1]
    while cur > k:
        small = cur - 2
        lo = (cur - small) // 2
        w = w[:, :, lo:lo + small, lo:lo + small]
        m = mats.get(f"{cur}to{small}")
        if transform and m is not None:
            c = w.shape[0]
            w = F.linear(w.reshape(c, small * small), m).reshape(c, 1, small, small)
        cur = small
    return w.contiguous()


def convert_released(sd: Mapping[str, torch.Tensor], path: str | Path, space: str | None = None,
                     kernel_transform: str | None = None) -> dict[str, Any]:
    """A latkit checkpoint dict (for ``space``) from a released once-for-all/CompOFA state dict.

    ``space`` None: the once-for-all space of the file's width. TrainError (one line naming what
    the file holds and what was expected) for another family, width or layout.
    """
    p = Path(path)
    s = file_summary(sd)
    if s["family"] != "a once-for-all MobileNetV3 supernet" or s["width"] is None or not s["n_classes"]:
        want = f"--space {space}" if space else "a latkit space"
        raise TrainError(f"{p} holds {_holds(s) if s['stem'] else s['family']}; expected a "
                         f"once-for-all/CompOFA MobileNetV3 supernet (first_conv, blocks.0-20, "
                         f"final_expand_layer, feature_mix_layer, classifier) for {want}")
    if space is None:
        space = f"ofa-mbv3-w{s['width']}"
    if space not in OFA_SPACES:
        raise TrainError(f"{p} holds {_holds(s)}; latkit holds such files in {', '.join(OFA_SPACES)}, "
                         f"not --space {space}")
    sp = get_space(space)
    if f"{sp.conf.width_mult:.1f}" != s["width"]:
        raise TrainError(f"{p} holds {_holds(s)}; --space {space} expects width "
                         f"{sp.conf.width_mult:.1f} (stem {sp.stem_width} channels)")
    kt = kernel_transform or default_kernel_transform(space)
    if kt not in KERNEL_TRANSFORMS:
        raise TrainError(f"kernel transform must be one of {KERNEL_TRANSFORMS}, got {kt!r}")
    table = _key_table(sp)
    canon: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        ck = canonical_key(k)
        if ck not in table:
            raise TrainError(f"{p}: unexpected tensor {k!r} for {_holds(s)}; expected the "
                             f"{space} layout (ks 3,5,7, e 3,4,6, d 2,3,4)")
        canon[ck] = v
    expected = _expected_shapes(sp, s["n_classes"])
    model: dict[str, torch.Tensor] = {}
    missing_matrices = 0
    for ck, lk in table.items():
        v = canon.get(ck)
        if v is None:
            if ck.endswith("_matrix"):
                missing_matrices += 1
                continue
            if ck.endswith("num_batches_tracked"):
                v = torch.tensor(0, dtype=torch.long)
            else:
                raise TrainError(f"{p} lacks {ck!r}: not the complete {space} supernet ({_holds(s)})")
        model[lk] = v
    # depthwise kernels and transform matrices onto latkit's elastic (or fixed) kernels
    for s_i in range(sp.n_stages):
        ks = sp.conf.ks_choices[s_i]
        for j in range(sp.max_depth):
            lk = f"stages.{s_i}.{j}.depthwise"
            w = model[f"{lk}.weight"].float()
            if w.dim() != 4 or w.shape[-1] != 7:
                raise TrainError(f"{p}: depthwise kernel of block {1 + _N_BLOCKS * s_i + j} is "
                                 f"{tuple(w.shape)}; expected 7x7 stored kernels (ks 3,5,7)")
            mats = {n: model.pop(f"{lk}.t{n}") for n in ("7to5", "5to3") if f"{lk}.t{n}" in model}
            mats = {n: (m if kt == "matrices" else torch.eye(m.shape[0])) for n, m in mats.items()}
            if len(ks) == 1:  # CompOFA: one fixed kernel per stage
                model[f"{lk}.weight"] = _fixed_kernel(w, ks[0], mats, kt == "matrices")
            else:
                for n, size in (("7to5", 25), ("5to3", 9)):
                    model[f"{lk}.t{n}"] = mats.get(n, torch.eye(size))
    for lk, shape in expected.items():
        v = model.get(lk)
        if v is None or tuple(v.shape) != shape:
            raise TrainError(f"{p}: {lk} is {None if v is None else tuple(v.shape)}, {space} with "
                             f"{s['n_classes']} classes needs {shape} ({_holds(s)})")
        model[lk] = v.float() if torch.is_floating_point(v) else v
    return {"format": "latkit-supernet", "version": 1, "space": space,
            "n_classes": s["n_classes"], "dropout": 0.1, "kernel_transform": True, "model": model,
            "source": {"path": str(p), "format": "once-for-all state_dict", "naming": s["naming"],
                       "width": s["width"], "n_classes": s["n_classes"], "kernel_transform": kt,
                       "missing_matrices": missing_matrices}}


def _expected_shapes(sp: SearchSpace, n_classes: int) -> dict[str, tuple[int, ...]]:
    """latkit's state-dict shapes for ``sp`` (the same numbers ``ElasticMobileNetV3`` builds)."""
    out: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for b in _BN[:4]:
            out[f"{prefix}.{b}"] = (c,)
        out[f"{prefix}.num_batches_tracked"] = ()

    st, fb = sp.stem_width, sp.first_block_width
    out["stem.0.weight"] = (st, 3, 3, 3)
    bn("stem.1", st)
    out["first_block.depthwise.0.weight"] = (st, 1, 3, 3)
    bn("first_block.depthwise.1", st)
    out["first_block.project.0.weight"] = (fb, st, 1, 1)
    bn("first_block.project.1", fb)
    for s, conf in enumerate(sp.conf.stages):
        k = max(sp.conf.ks_choices[s])
        for j in range(sp.max_depth):
            cin = sp.stage_in_width(s) if j == 0 else sp.stage_widths[s]
            cout, mid = sp.stage_widths[s], make_divisible(round(cin * max(sp.conf.e_choices)), 8)
            lk = f"stages.{s}.{j}."
            out[lk + "expand_conv.weight"] = (mid, cin, 1, 1)
            bn(lk + "expand_bn", mid)
            out[lk + "depthwise.weight"] = (mid, 1, k, k)
            if len(sp.conf.ks_choices[s]) > 1:
                out[lk + "depthwise.t7to5"], out[lk + "depthwise.t5to3"] = (25, 25), (9, 9)
            bn(lk + "depthwise_bn", mid)
            if conf.se:
                sm = make_divisible(mid // 4, 8)
                out[lk + "se.reduce_weight"], out[lk + "se.reduce_bias"] = (sm, mid, 1, 1), (sm,)
                out[lk + "se.expand_weight"], out[lk + "se.expand_bias"] = (mid, sm, 1, 1), (mid,)
            out[lk + "project.weight"] = (cout, mid, 1, 1)
            bn(lk + "project_bn", cout)
    out["final_expand.0.weight"] = (sp.final_expand_width, sp.stage_widths[-1], 1, 1)
    bn("final_expand.1", sp.final_expand_width)
    out["feature_mix.0.weight"] = (sp.feature_mix_width, sp.final_expand_width, 1, 1)
    out["classifier.linear.weight"] = (n_classes, sp.feature_mix_width)
    out["classifier.linear.bias"] = (n_classes,)
    return out


# --------------------------------------------------------------------------------------------
# latkit checkpoint -> once-for-all's file
# --------------------------------------------------------------------------------------------


def _current_name(canon: str) -> str:
    """once-for-all's current key for a canonical one (dynamic layers of blocks 1.. are doubled)."""
    if not canon.startswith("blocks.") or canon.startswith("blocks.0."):
        return canon
    if canon.endswith("_matrix") or ".se.fc." in canon:
        return canon
    return canon.replace(".bn.", ".bn.bn.").replace(".conv.weight", ".conv.conv.weight")


def to_ofa_state_dict(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """once-for-all's ``OFAMobileNetV3`` state dict (current naming) of a latkit checkpoint."""
    space = ckpt.get("space")
    if space not in OFA_SPACES:
        raise TrainError(f"checkpoint is for space {space!r}; once-for-all's files hold "
                         f"{', '.join(OFA_SPACES)}")
    sp = get_space(space)
    model = ckpt["model"]
    out: dict[str, torch.Tensor] = {}
    for canon, lk in _key_table(sp).items():
        if lk.endswith((".t7to5", ".t5to3")):
            size = 25 if lk.endswith("t7to5") else 9
            v = model.get(lk)
            out[_current_name(canon)] = (v if v is not None else torch.eye(size)).float().clone()
            continue
        v = model.get(lk)
        if v is None:
            raise TrainError(f"checkpoint lacks {lk}: not a complete {space} supernet")
        if lk.endswith("depthwise.weight") and v.shape[-1] != 7:  # CompOFA's fixed kernel: centre of 7x7
            w = torch.zeros(v.shape[0], 1, 7, 7, dtype=v.dtype)
            o = (7 - v.shape[-1]) // 2
            w[:, :, o:o + v.shape[-1], o:o + v.shape[-1]] = v
            v = w
        out[_current_name(canon)] = v.float().clone() if torch.is_floating_point(v) else v.clone()
    return out
