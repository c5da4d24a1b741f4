"""The choice of the environment's toplevel (verif/tb_top.py): core alone or R playout top."""

from spatten_dv.verif import tb_top


def test_playout_follows_the_environment_variable(monkeypatch):
    monkeypatch.setenv("SPATTEN_PLAYOUT", "1")
    assert tb_top.playout() is True
    monkeypatch.setenv("SPATTEN_PLAYOUT", "0")
    assert tb_top.playout() is False
    monkeypatch.delenv("SPATTEN_PLAYOUT")
    assert tb_top.playout() is tb_top.PLAYOUT_DEFAULT


def test_toplevels_and_their_sources():
    top, sources = tb_top.core_toplevel(False)
    assert top == "spatten_core" and sources[0].name == "spatten_core.v"
    top, sources = tb_top.core_toplevel(True)
    names = [p.name for p in sources]
    assert top == "spatten_core_tb" and names[:2] == ["spatten_core_tb.v", "axi_r_playout.v"]
    assert "spatten_core.v" in names and all(p.is_file() for p in sources)
