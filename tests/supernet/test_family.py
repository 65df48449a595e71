"""Family spaces: a parent space and an explicit member list, read strictly from JSON."""

import json
import random
import subprocess
import sys

import pytest

from latkit.errors import ArchError, SpaceError
from latkit.supernet.family import FamilySpace, members_sha256, save_family
from latkit.supernet.space import get_space

PARENT = "compofa-w1.0"


def lat(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "latkit", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.fixture
def family(tmp_path):
    sp = get_space(PARENT)
    rng = random.Random(0)
    members = list(dict.fromkeys([sp.sample(rng, 128) for _ in range(12)] +
                                 [sp.sample(rng, 160) for _ in range(5)]))
    path = save_family(tmp_path / "fam.json", sp, members, {"how": "test"})
    return path, members


def test_a_family_is_a_space_of_its_members(family):
    path, members = family
    fam = get_space(str(path))
    assert isinstance(fam, FamilySpace) and fam.name == PARENT and fam.parent is get_space(PARENT)
    assert fam.resolutions == (128, 160)
    assert list(fam.enumerate()) == members
    assert list(fam.enumerate(160)) == [a for a in members if a.r == 160]
    assert fam.num_subnets(per_resolution=False) == len(members)
    assert fam.num_subnets() == max(sum(a.r == r for a in members) for r in (128, 160))
    rng = random.Random(1)
    assert all(fam.sample(rng) in members for _ in range(50))
    assert all(fam.sample(rng, 160).r == 160 for _ in range(20))
    assert all(fam.mutate(members[0], rng, prob=0.5) in members for _ in range(20))
    assert fam.crossover(members[0], members[1], rng) in members[:2]
    assert fam.max_arch(128) == max((a for a in members if a.r == 128), key=fam.macs)
    # unique layers come from the members only: fewer than the parent's, and all of theirs
    layers = {spec.key for spec in fam.unique_layers()}
    assert layers == {spec.key for a in members for spec in fam.layers(a)}
    assert layers < {spec.key for spec in get_space(PARENT).unique_layers([128, 160])}
    # a subnet of the parent that is not a member is refused, naming the family
    other = next(a for a in get_space(PARENT).enumerate(128) if a not in members)
    with pytest.raises(ArchError, match="not of family"):
        fam.validate(other)
    with pytest.raises(ArchError, match="have no member"):
        fam.sample(rng, 144)
    d = fam.describe()
    assert d["parent"] == PARENT and d["subnets_total"] == len(members)


def _edit(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("case, needle", [
    ("tampered", "do not match its members_sha256"),
    ("not_member", "member 1 "),
    ("duplicate", "listed more than once"),
    ("unknown_key", "unknown field(s) ['extra']"),
    ("parent", "parent: unknown space 'nope'"),
    ("format", "not a family file"),
    ("empty", "non-empty list of arch keys"),
    ("json", "not valid JSON"),
    ("nan", "non-standard JSON constant NaN"),
])
def test_a_malformed_or_tampered_family_is_one_line_exit_2(family, case, needle):
    path, members = family
    edits = {
        "tampered": lambda d: d["members"].pop(),
        "not_member": lambda d: d["members"].__setitem__(0, "r128-k33.33.33.33.33-e33.33.33.33.33"),
        "duplicate": lambda d: (d["members"].append(d["members"][0]), d.pop("members_sha256")),
        "unknown_key": lambda d: d.update(extra=1),
        "parent": lambda d: d.update(parent="nope"),
        "format": lambda d: d.update(format="latkit-predictor"),
        "empty": lambda d: d.update(members=[]),
    }
    if case == "json":
        path.write_text("{")
    elif case == "nan":
        path.write_text(path.read_text().replace('"version": 1', '"version": NaN'))
    else:
        _edit(path, edits[case])
    with pytest.raises(SpaceError, match="family file"):
        get_space(str(path))
    p = lat("space", "enumerate", "--space", path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr


def test_a_hand_written_family_needs_no_checksum(tmp_path):
    sp = get_space(PARENT)
    members = [str(sp.min_arch(128)), str(sp.max_arch(128))]
    path = tmp_path / "hand.json"
    path.write_text(json.dumps({"format": "latkit-family", "version": 1, "parent": PARENT,
                                "members": members}))
    fam = get_space(str(path))
    assert [str(a) for a in fam.enumerate()] == members
    assert members_sha256(fam.members) == fam.provenance()["members_sha256"]


def test_every_space_command_takes_a_family(family, tmp_path):
    path, members = family
    p = lat("space", "enumerate", "--space", path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(a) for a in members]
    p = lat("space", "sample", "--space", path, "-n", "5", "--resolutions", "160")
    assert p.returncode == 0 and all(line in {str(a) for a in members} for line in p.stdout.split())
    p = lat("space", "describe", "--space", path, "--arch", members[0], "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["key"] == str(members[0])
    other = next(a for a in get_space(PARENT).enumerate(128) if a not in members)
    p = lat("space", "describe", "--space", path, "--arch", other)
    assert p.returncode == 2 and "not of family" in p.stderr
    p = lat("space", "enumerate", "--space", tmp_path / "missing.json")
    assert p.returncode == 2 and "no such family file" in p.stderr
