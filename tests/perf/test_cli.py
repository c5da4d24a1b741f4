"""`spatten-dv perf`: user mistakes are one line (exit 2); a small run prints the step table."""

import json

import pytest

from spatten_dv.cli import main

SLICE = ["smollm2_code", "--steps", "3", "--layers", "28", "--heads", "4,8"]


@pytest.mark.parametrize("argv, message", [
    (["no_such_thing"], "no such file"),
    (SLICE + ["--dram", "DDR9"], "--dram 'DDR9'"),
    (SLICE + ["--channels", "3"], "--channels 3"),
    (SLICE + ["--sweep", "banks=1,2"], "--sweep 'banks'"),
    (SLICE + ["--sweep", "channels=1,3"], "channels must be"),
    (SLICE + ["--sweep", "multipliers=100"], "multiples of 64"),
    (SLICE + ["--plot", "x.png"], "--plot needs --sweep"),
    (["smollm2_code", "--steps", "99"], "--steps"),
    (["summary-gpt2-small-wikitext2-per8", "--heads", "1"], "--heads applies to traces"),
])
def test_user_errors_are_one_line(argv, message, capsys):
    assert main(["perf", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_rtl_records_must_be_replay_records(tmp_path, capsys):
    bad = tmp_path / "jobs.jsonl"
    bad.write_text('{"job": 0}\n')
    assert main(["perf", *SLICE, "--rtl", str(bad)]) == 2
    assert "not a replay job record" in capsys.readouterr().err


def test_trace_slice_with_sweep_plot_and_json(tmp_path, capsys):
    out, plot = tmp_path / "perf.json", tmp_path / "sweep.png"
    rc = main(["perf", *SLICE, "--dram", "ideal", "--sweep", "lanes=1,2",
               "--plot", str(plot), "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "cycles per decode step" in text and "GOP/s at 1 GHz" in text
    res = json.loads(out.read_text())
    cfg = res["configs"][0]
    assert res["jobs"] == 2 and cfg["config"] == "default" and cfg["predicted_rtl"]
    pts = cfg["sweep"]["points"]
    assert [p["value"] for p in pts] == [1, 2]
    assert pts[1]["cycles_per_step"] < pts[0]["cycles_per_step"]  # 2 softmax lanes help
    assert plot.stat().st_size > 1000


def test_overlap_shortens_the_span_and_no_overlap_is_sequential(tmp_path, capsys):
    # head 4 prunes (waits for the back stage), head 8 overlaps it
    spans = {}
    for flag in ("--overlap", "--no-overlap"):
        out = tmp_path / f"{flag}.json"
        assert main(["perf", *SLICE, "--dram", "ideal", flag, "--out", str(out)]) == 0
        cfg = json.loads(out.read_text())["configs"][0]
        assert cfg["overlap"] is (flag == "--overlap")
        step = cfg["steps"]["3"]
        spans[flag] = step["cycles"]
        if flag == "--no-overlap":  # one job at a time: + RESULT and IDLE per job
            assert step["cycles"] == pytest.approx(step["job_cycles_sum"] + 2 * step["jobs"])
        else:
            assert step["cycles"] < step["job_cycles_sum"]
    assert spans["--overlap"] < spans["--no-overlap"]
    assert "jobs overlap on two job stages" in capsys.readouterr().out


@pytest.mark.parametrize("with_span", [True, False])
def test_rtl_comparison_uses_spans_or_job_sums(tmp_path, capsys, with_span):
    recs = [{"step": 3, "cycles": 1000, "beats": 10, "accept_cycle": 1, "result_cycle": 1002},
            {"step": 3, "cycles": 1500, "beats": 10, "accept_cycle": 800, "result_cycle": 2301}]
    if not with_span:
        for r in recs:
            del r["accept_cycle"], r["result_cycle"]
    path, out = tmp_path / "jobs.jsonl", tmp_path / "perf.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main(["perf", *SLICE, "--dram", "ideal", "--rtl", str(path), "--out", str(out)]) == 0
    got = json.loads(out.read_text())["configs"][0]["rtl_agreement"]["3"]
    assert got["compared"] == ("span" if with_span else "job sum")
    assert got["rtl"] == (2301 if with_span else 2500)
