"""The one --resolutions grammar and the one accuracy-table reader."""

import pytest

from latkit.errors import ArchError, LatkitError, PredictorError
from latkit.supernet.accuracy_csv import read_accuracy_csv
from latkit.supernet.resolutions import format_resolutions, parse_resolutions
from latkit.supernet.space import get_space


def test_resolutions_grammar():
    sp = get_space("ofa-mbv3-w1.0")
    assert parse_resolutions("128-144") == (128, 132, 136, 140, 144)
    assert parse_resolutions("128-224:48,128", sp) == (128, 176, 224)
    assert parse_resolutions(" 160 , 128 ") == (160, 128)
    assert parse_resolutions("all") is None and parse_resolutions(None) is None
    assert parse_resolutions(format_resolutions([128, 160])) == (128, 160)
    for bad in ("x", "", "144-128", "128-144:0", ",", "176.5", "-4"):
        with pytest.raises(ArchError, match="--resolutions"):
            parse_resolutions(bad)
    with pytest.raises(ArchError, match="not in ofa-mbv3-w1.0"):
        parse_resolutions("130", sp)


def test_accuracy_csv_checks(tmp_path):
    cs = get_space("compofa-w1.0")
    archs = list(cs.enumerate(128))[:3]
    f = tmp_path / "acc.csv"
    f.write_text("# comment\narch,top1\n" + "".join(f"{a},{50 + i}\n" for i, a in enumerate(archs)))
    rows = read_accuracy_csv(f, cs)
    assert [r.arch for r in rows] == archs and rows[1].top1 == 51
    arch, top1, fields = rows[0]
    assert (arch, top1, fields["top1"]) == (archs[0], 50.0, "50")
    f.write_text(f"arch,top1\n{archs[0]},0\n")
    assert read_accuracy_csv(f, cs)[0].top1 == 0.0  # 0% is a valid top-1
    cases = [
        (f"arch,top1\n{archs[0]},1\n{archs[0]},2\n", LatkitError, ":3: .*twice"),
        (f"arch,top1,space\n{archs[0]},1,ofa-mbv3-w1.0\n", PredictorError, "is for space"),
        (f"arch,top1\n{archs[0]},nan\n", LatkitError, "percentage"),
        (f"arch,top1\n{archs[0]},150\n", LatkitError, "percentage"),
        (f"arch,top1\n{archs[0]},-1\n", LatkitError, "percentage"),
        (f"arch,top1\n{archs[0]},high\n", LatkitError, "must be a number"),
        ("arch,top1\n", LatkitError, "no rows"),
        ("arch,top1\nzz,1\n", ArchError, ":2:"),
        ("key,acc\nx,1\n", LatkitError, "needs columns arch,top1"),
    ]
    for text, err, match in cases:
        f.write_text(text)
        with pytest.raises(err, match=match):
            read_accuracy_csv(f, cs)
    f.write_text("arch,top1\n")
    assert read_accuracy_csv(f, cs, allow_empty=True) == []
    with pytest.raises(LatkitError, match="does not exist"):
        read_accuracy_csv(tmp_path / "missing.csv", cs)
