"""The atomic writer, sha256 and the provenance record shared by every writer."""

import os
import stat

import pytest

from latkit import fileio, provenance
from latkit.errors import OutputError


def test_atomic_write_refuses_what_is_not_a_regular_file(tmp_path):
    p = tmp_path/"a.txt"
    fileio.write_text(p, "x")
    assert p.read_text()=="x"
    os.chmod(p, 0o640); fileio.write_text(p, "y"); assert stat.S_IMODE(os.stat(p).st_mode)==0o640
    os.mkfifo(tmp_path/"f")
    with pytest.raises(OutputError, match="FIFO"): fileio.write_text(tmp_path/"f", "x")
    os.symlink(p, tmp_path/"l")
    with pytest.raises(OutputError, match="symbolic"): fileio.write_text(tmp_path/"l", "x")
    with pytest.raises(OutputError, match="character device"): fileio.write_text("/dev/full", "x")
    assert len(fileio.sha256_file(p))==64
    assert os.listdir(tmp_path) and not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_provenance_versions_and_command():
    v = provenance.versions(); assert set(v) >= {"latkit","python","torch","numpy"}
    assert provenance.command_line("lat-fit", ["--out", "a b"]) == "lat-fit --out 'a b'"
