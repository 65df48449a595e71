"""The atomic writer, sha256 and the provenance record shared by every writer."""

import hashlib
import os
import stat

import pytest

from latkit import fileio, provenance
from latkit.errors import OutputError


def test_atomic_write_replaces_a_regular_file_and_keeps_its_mode(tmp_path):
    p = tmp_path / "a.txt"
    fileio.write_text(p, "x")
    assert p.read_text() == "x"
    os.chmod(p, 0o640)
    fileio.write_text(p, "y")
    assert p.read_text() == "y" and stat.S_IMODE(os.stat(p).st_mode) == 0o640
    assert fileio.sha256_file(p) == hashlib.sha256(b"y").hexdigest()
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]  # no temporary file left behind


def test_atomic_write_refuses_what_is_not_a_regular_file(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("keep")
    os.mkfifo(tmp_path / "fifo")
    os.symlink(target, tmp_path / "link")
    cases = [(tmp_path / "fifo", "FIFO"), (tmp_path / "link", "symbolic link"),
             (tmp_path, "directory"), ("/dev/full", "character device")]
    for path, what in cases:
        with pytest.raises(OutputError, match=what):
            fileio.write_text(path, "x")
    assert target.read_text() == "keep" and os.path.islink(tmp_path / "link")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_failed_write_leaves_the_old_file(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), fileio.atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_provenance_versions_and_command():
    v = provenance.versions()
    assert set(v) == {"latkit", "python", *provenance.DISTRIBUTIONS}
    assert provenance.command_line("lat-fit", ["--out", "a b"]) == "lat-fit --out 'a b'"
    rec = provenance.record("lat fit")
    assert rec["command"] == "lat fit" and rec["cwd"] == os.getcwd() and rec["versions"] == v
