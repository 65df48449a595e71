"""The one --resolutions grammar and the one accuracy-table reader."""

import pytest

from latkit.errors import ArchError, LatkitError, PredictorError
from latkit.supernet.accuracy_csv import read_accuracy_csv
from latkit.supernet.resolutions import parse_resolutions
from latkit.supernet.space import get_space


def test_resolutions_grammar():
    sp = get_space("ofa-mbv3-w1.0")
    assert parse_resolutions("128-144") == (128,132,136,140,144)
    assert parse_resolutions("128-224:48,128", sp) == (128,176,224)
    assert parse_resolutions("all") is None
    for bad in ("x", "", "144-128", "128-144:0", ","):
        with pytest.raises(ArchError): parse_resolutions(bad)
    with pytest.raises(ArchError, match="not in"): parse_resolutions("130", sp)


def test_accuracy_csv_checks(tmp_path):
    cs = get_space("compofa-w1.0"); archs = list(cs.enumerate(128))[:3]
    f = tmp_path/"acc.csv"; f.write_text("# c\narch,top1\n" + "".join(f"{a},{50+i}\n" for i,a in enumerate(archs)))
    rows = read_accuracy_csv(f, cs); assert [r.arch for r in rows]==archs and rows[1].top1==51
    a, t, fields = rows[0]
    f.write_text(f"arch,top1\n{archs[0]},1\n{archs[0]},2\n")
    with pytest.raises(LatkitError, match=":3: .*twice"): read_accuracy_csv(f, cs)
    f.write_text(f"arch,top1,space\n{archs[0]},1,ofa-mbv3-w1.0\n")
    with pytest.raises(PredictorError, match="is for space"): read_accuracy_csv(f, cs)
    f.write_text(f"arch,top1\n{archs[0]},nan\n")
    with pytest.raises(LatkitError, match="percentage"): read_accuracy_csv(f, cs)
    f.write_text("arch,top1\n")
    with pytest.raises(LatkitError, match="no rows"): read_accuracy_csv(f, cs)
    assert read_accuracy_csv(f, cs, allow_empty=True) == []
    f.write_text("arch,top1\nzz\n")
    with pytest.raises(ArchError, match=":2:"): read_accuracy_csv(f, cs)
