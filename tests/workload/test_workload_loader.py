"""The workload CSV loader: every shipped file parses, malformed files give clear errors."""

import gzip
from pathlib import Path

import pytest

from spatten_dv.errors import UserError
from spatten_dv.traces.workload import (
    COLUMNS,
    WorkloadError,
    load_workload,
    model_from_config,
    resolve_workload,
    shipped_dir,
    shipped_workloads,
    summarize,
)

PER8 = "summary-gpt2-small-wikitext2-per8"
MEDIUM_HP = "summary-gpt2-medium-wikitext2-per0-hp-step5+dedic+glob_p+local_p+hp+topk+quant"

# name -> (rows, model, dataset, sha256 of the uncompressed CSV; docs/workloads.md lists them)
SHIPPED = {
    "small": (1, "gpt2-medium", "ptb",
              "51150d785d94fe2b195e04c53ce0bbdaa2a55956b8ea6d07cb1f924e8f2cf404"),
    "summary-gpt2-medium-ptb-per0": (
        12288, "gpt2-medium", "ptb",
        "c76e09d3115fb265a955f95f3d9d6d65fc94fbb8222087236d2138a8f34d4892"),
    MEDIUM_HP: (11328, "gpt2-medium", "wikitext2",
                "d344301ad2eff33a1635278e88cd7599dc2f91f8d48924f20edc3e5a54df1db2"),
    "summary-gpt2-small-wikitext2-per8-step1+dedic": (
        4608, "gpt2", "wikitext2",
        "1d63e304bdac1c53899e70bbb7b7012ba0a4b8d1bd3a41354ba67d702004f5da"),
    PER8: (4608, "gpt2", "wikitext2",
           "5f17e1c00556cd6d3a1152dc5eb5e01de00fb8c8a39d13ce1260aba5f776c52d"),
}


def per8_text() -> str:
    return gzip.decompress((shipped_dir() / f"{PER8}.csv.gz").read_bytes()).decode()


def write(tmp_path, text: str, name="w.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def small_text(n_lines=40) -> str:
    """Header, the first n_lines - 1 data rows of per8, and the config trailer."""
    lines = per8_text().splitlines()
    return "\n".join(lines[:n_lines] + [lines[-1]]) + "\n"


# ------------------------------------------------------------------ shipped files

def test_every_csv_is_shipped():
    assert sorted(p.name.removesuffix(".csv.gz") for p in shipped_workloads()) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_csv_parses(name):
    rows, model, dataset, sha = SHIPPED[name]
    wl = load_workload(shipped_dir() / f"{name}.csv.gz")
    assert (len(wl.rows), wl.model, wl.dataset, wl.sha256) == (rows, model, dataset, sha)
    assert wl.config.startswith(f"configs/gpt2/{dataset}/") and wl.config.endswith(".yml")
    assert wl.rows[0].line == 2 and wl.rows[-1].line == rows + 1
    assert wl.extra_columns == ()
    assert {r.head_dim for r in wl.rows} == {64}
    if name != "small":
        # 992 prompt tokens + 32 generated: step s attends over 993 + s tokens
        assert wl.steps == list(range(32))
        assert all(r.n_tokens == 993 + r.step for r in wl.rows)
        assert len(wl.layers) == wl.n_layers


def test_small_csv_is_one_row_of_the_ptb_baseline():
    """small.csv: header, one data row (step 0, layer 0, head 0 of the PTB baseline) and the
    config trailer. Well-formed; parsed as a one-row workload of gpt2-medium."""
    small = load_workload(resolve_workload("small"))
    ptb = load_workload(resolve_workload("summary-gpt2-medium-ptb-per0"))
    assert len(small.rows) == 1
    assert small.rows[0] == ptb.rows[0]
    assert (small.n_layers, small.n_heads) == (24, 16)  # from the config path
    s = summarize(small)
    assert s["absent_head_rows"] == 15 and s["rows"] == 1


def test_data_facts_the_converter_relies_on():
    """Documented in docs/workloads.md: counts are equal across heads; step 0 is dense; later
    steps' counts are fixed budgets that grow back at every step; top-k marks announce the
    next layer's key count; absent heads are the highest indices."""
    for path in shipped_workloads():
        s = summarize(load_workload(path))
        assert s["keys_equal_across_heads"] and s["values_equal_across_heads"]
        assert s["first_step_fetches_every_key"]
        assert s["topk_matching_next_layer"] == s["topk_rows"]
    per8 = summarize(load_workload(resolve_workload(PER8)))
    assert per8["key_schedule_last_step"] == "0: 921, 1: 716, 2-5: 204, 6-11: 102"
    assert per8["steps_with_full_layer0"] == 1
    assert per8["lsb_refetch_rows"] == 323
    hp = summarize(load_workload(resolve_workload(MEDIUM_HP)))
    assert hp["heads_per_layer_last_step"] == "0-15: 16/16, 16-21: 13/16, 22-23: 10/16"
    assert hp["key_schedule_last_step"] == "0-1: 1024, 2: 921, 3-4: 819, 5-10: 614, 11-23: 307"


def test_plain_csv_crlf_and_extra_columns(tmp_path):
    text = small_text(10)
    lines = text.splitlines()
    lines = [lines[0] + ",comment"] + [x + ",hello" for x in lines[1:-1]] + [lines[-1] + ","]
    p = write(tmp_path, "\r\n".join(lines) + "\r\n")
    wl = load_workload(p)
    assert len(wl.rows) == 9 and wl.extra_columns == ("comment",)
    assert wl.name == "w"


def test_resolve_by_name_and_path(tmp_path):
    assert resolve_workload("small").name == "small.csv.gz"
    assert resolve_workload("small.csv").name == "small.csv.gz"
    p = write(tmp_path, small_text(3))
    assert resolve_workload(str(p)) == p
    with pytest.raises(WorkloadError, match="not a shipped workload"):
        resolve_workload("no-such-workload")


def test_model_from_config():
    assert model_from_config("configs/gpt2/ptb/medium_baseline_train+eval.yml") == \
        ("gpt2-medium", "ptb")
    assert model_from_config("configs/gpt2/wikitext2/gpt2_pp11+x.yml") == ("gpt2", "wikitext2")
    assert model_from_config("configs/bert/squad/x.yml") == (None, None)
    assert model_from_config(None) == (None, None)


# ------------------------------------------------------------------ malformed files

def expect_error(p, match, **kw):
    with pytest.raises(WorkloadError, match=match) as info:
        load_workload(p, **kw)
    assert isinstance(info.value, UserError)
    assert str(p) in str(info.value)
    return info.value


def test_missing_column(tmp_path):
    lines = small_text(5).splitlines()
    drop = list(COLUMNS).index("value_fetch_num")

    def cut(line):
        f = line.split(",")
        return ",".join(f[:drop] + f[drop + 1:])

    p = write(tmp_path, "\n".join([cut(x) for x in lines[:-1]] + [lines[-1]]) + "\n")
    err = expect_error(p, r"line 1, column 'value_fetch_num': header lacks column")
    assert (err.line, err.column) == (1, "value_fetch_num")


def test_no_header(tmp_path):
    p = write(tmp_path, "\n".join(small_text(5).splitlines()[1:]) + "\n")
    expect_error(p, r"line 1: the first line is not a header.*\(no header line\?\)")


@pytest.mark.parametrize("column,old,new,match", [
    ("if_requant", "True", "Flase", r"line 4, column 'if_requant': 'Flase' is not True or False"),
    ("key_fetch_num", "993", "99x", r"line 4, column 'key_fetch_num': '99x' is not an integer"),
    ("key_fetch_num", "993", "2000", r"line 4, column 'key_fetch_num': 2000 is outside 1\.\.s"),
    ("value_fetch_num", "204", "0", r"line 4, column 'value_fetch_num': 0 is outside 1\.\.k"),
    ("quant_key_bit", "6", "-3", r"column 'quant_key_bit': must be -1 \(not quantised\)"),
    ("auto_requant_thres", "0.05", "1.5", r"column 'auto_requant_thres': must be -1 \(off\)"),
    ("auto_requant_thres", "0.05", "nan", r"column 'auto_requant_thres': 'nan' is not a num"),
    ("embedding_length_D", "64.0", "64.5", r"column 'embedding_length_D': '64.5' is not an int"),
    ("topk", "-1", "7", r"column 'topk': if_topk is False, so topk must be -1"),
    ("head_id", "2", "-2", r"column 'head_id': must be >= 0"),
])
def test_bad_value(tmp_path, column, old, new, match):
    lines = small_text(8).splitlines()
    header = lines[0].split(",")
    f = lines[3].split(",")  # file line 4: step 0, layer 0, head 2
    i = header.index(column)
    assert f[i] == old
    f[i] = new
    lines[3] = ",".join(f)
    expect_error(write(tmp_path, "\n".join(lines) + "\n"), match)


def test_requant_without_progressive_quantization(tmp_path):
    text = small_text(5).replace(",0.05,True,4,", ",-1,True,4,", 1)
    expect_error(write(tmp_path, text), r"line 2, column 'if_requant': True, but progressive")


@pytest.mark.parametrize("line,keep", [(2, 1), (10, 17), (31, 40), (59, 60), (59, 61)])
def test_truncated_mid_line(tmp_path, line, keep):
    """The file ends `keep` characters into data line `line`."""
    lines = small_text(60).splitlines()
    assert len(lines[line - 1]) > keep
    text = "\n".join(lines[:line - 1] + [lines[line - 1][:keep]])
    err = expect_error(write(tmp_path, text), rf"line {line}.*\(truncated file\?\)")
    assert err.line == line


@pytest.mark.parametrize("keep", [10, 40, 75])
def test_truncated_in_the_trailer(tmp_path, keep):
    lines = small_text(10).splitlines()
    text = "\n".join(lines[:-1] + [lines[-1][:keep]])
    expect_error(write(tmp_path, text), r"line 11: config trailer line has \d+ fields, "
                 r"expected 17 \(truncated file\?\)")


def test_truncated_at_line_boundary(tmp_path):
    text = small_text(60)
    p = write(tmp_path, "\n".join(text.splitlines()[:30]) + "\n")
    expect_error(p, r"ends at line 30 without the config trailer line .*\(truncated file\?\)")
    wl = load_workload(p, require_trailer=False)
    assert len(wl.rows) == 29 and wl.config is None and wl.model is None
    assert (wl.n_layers, wl.n_heads) == (3, 12)  # as seen in the rows


def test_truncated_gzip(tmp_path):
    data = (shipped_dir() / f"{PER8}.csv.gz").read_bytes()
    p = tmp_path / "t.csv.gz"
    p.write_bytes(data[: len(data) // 2])
    expect_error(p, r"corrupt or truncated gzip data")


def test_repeated_header_and_data_after_trailer(tmp_path):
    lines = small_text(5).splitlines()
    p = write(tmp_path, "\n".join(lines[:3] + [lines[0]] + lines[3:]) + "\n")
    expect_error(p, r"line 4: header line repeated")
    p = write(tmp_path, "\n".join(lines + lines[1:3]) + "\n")
    expect_error(p, r"line 7: data after the config trailer line")


def test_row_order_and_duplicates(tmp_path):
    lines = small_text(6).splitlines()
    swapped = lines[:2] + [lines[3], lines[2]] + lines[4:]
    expect_error(write(tmp_path, "\n".join(swapped) + "\n"),
                 r"line 4: \(step, layer, head\) = \(0, 0, 1\) does not follow \(0, 0, 2\)")
    dup = lines[:3] + [lines[2]] + lines[3:]
    expect_error(write(tmp_path, "\n".join(dup) + "\n"), r"line 4: .* strictly increasing")


def test_rows_outside_the_configs_model(tmp_path):
    lines = small_text(4).splitlines()  # header, (0, 0, 0..2), trailer
    f = lines[-2].split(",")
    f[1] = "12"  # layer 12 of a 12-layer gpt2
    lines[-2] = ",".join(f)
    p = write(tmp_path, "\n".join(lines) + "\n")
    expect_error(p, r"line 4, column 'layer_id': the config names gpt2 \(12 layers, 12 heads\)")


def test_empty_and_header_only(tmp_path):
    expect_error(write(tmp_path, ""), "empty file")
    lines = small_text(3).splitlines()
    expect_error(write(tmp_path, lines[0] + "\n" + lines[-1] + "\n"), "no data rows")


def test_unreadable(tmp_path):
    expect_error(tmp_path / "missing.csv", "cannot read")
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00garbage")
    expect_error(p, "not UTF-8")
