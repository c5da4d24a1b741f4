"""Pin access to one or more AXI4 read channels whose signals are flattened vectors.

A DUT with N read channels exposes e.g. `m_axi_arvalid[N-1:0]` and `m_axi_araddr[N*32-1:0]`.
Several per-channel responders drive slices of the same vectors, so writes go through this
port, which keeps the composed value of every driven vector and writes it whole.

With the testbench top `spatten_core_tb` (verif/hdl/spatten_core_tb.v, recognised by its
`tb_r_push` pin) the R channels are not on the pins: HDL FIFOs play the beats out, and the
port gives the responders the FIFOs' push, release and completion pins instead (`playout`).
"""

from __future__ import annotations


class AxiReadPort:
    AR_INPUTS = ("arvalid", "araddr", "arlen", "arsize", "arburst")
    AR_OUTPUTS = ("arready",)
    R_INPUTS = ("rready",)
    R_OUTPUTS = ("rvalid", "rdata", "rresp", "rlast")
    # R playout pins of spatten_core_tb (no prefix): driven, then read back
    PLAYOUT_OUTPUTS = ("tb_r_push", "tb_r_beats", "tb_r_extra", "tb_r_resp", "tb_r_gap",
                       "tb_r_released", "tb_r_max_outstanding")
    PLAYOUT_INPUTS = ("tb_r_done", "tb_r_first", "tb_r_log", "tb_ar_ready")

    def __init__(self, dut, prefix: str = "m_axi", channels: int = 1):
        self.dut = dut
        self.channels = channels
        self.playout = hasattr(dut, "tb_r_push")
        self.signals = {}
        names = [(n, f"{prefix}_{n}") for n in self.AR_INPUTS + self.AR_OUTPUTS]
        if self.playout:
            names += [(n, n) for n in self.PLAYOUT_OUTPUTS + self.PLAYOUT_INPUTS]
        else:
            names += [(n, f"{prefix}_{n}") for n in self.R_INPUTS + self.R_OUTPUTS]
        for name, pin in names:
            handle = getattr(dut, pin, None)
            if handle is None:
                raise AttributeError(f"{dut._name} has no signal {pin}")
            self.signals[name] = handle
        self.width = {name: len(h) // channels for name, h in self.signals.items()}
        # Signals of up to 32 bits are read as integers straight from the simulator handle:
        # cocotb's `.value` builds a LogicArray from a bit string first, several times the
        # cost, on the hot path of every burst. (X or Z would read as 0 there; these pins are
        # only read after reset.)
        self._raw, self._mask = {}, {}
        for name, h in self.signals.items():
            raw = getattr(h, "_handle", None)
            if len(h) <= 32 and hasattr(raw, "get_signal_val_long"):
                self._raw[name], self._mask[name] = raw, (1 << len(h)) - 1
        if self.playout:
            outputs = self.AR_OUTPUTS + self.PLAYOUT_OUTPUTS
        else:
            outputs = self.AR_OUTPUTS + self.R_OUTPUTS
        self._driven = {name: 0 for name in outputs}
        for name in outputs:
            if name == "tb_r_push":  # a toggle: keep its level (the FIFO adopts it at reset)
                try:
                    self._driven[name] = int(self.signals[name].value)
                    continue
                except ValueError:  # X before anything drove it: 0, before the reset
                    pass
            self.signals[name].value = 0

    def beat_bytes(self) -> int:
        """Bytes per R beat (read after time 0: the playout top reports its bus width)."""
        if self.playout:
            return int(self.dut.tb_r_beat_bytes.value)
        return self.width["rdata"] // 8

    def get(self, name: str, ch: int) -> int:
        if self.channels == 1:  # several times per burst: no slicing
            raw = self._raw.get(name)
            if raw is not None:
                return raw.get_signal_val_long() & self._mask[name]
            return int(self.signals[name].value)
        w = self.width[name]
        value = self.signals[name].value
        try:
            return (int(value) >> (w * ch)) & ((1 << w) - 1)
        except ValueError:
            # X/Z in the vector (4-state simulators): AXI leaves ARADDR/ARLEN/... undefined on
            # a channel whose ARVALID is low; only this channel's field must be 0/1
            bits = str(value)
            field = bits[len(bits) - w * (ch + 1):len(bits) - w * ch]
            try:
                return int(field, 2)
            except ValueError:
                raise AssertionError(f"{name} of channel {ch} is {field!r}: not 0/1") from None

    def set(self, name: str, ch: int, value: int) -> None:
        if self.channels == 1:
            value = int(value)
            if value != self._driven[name]:
                self._driven[name] = value
                self.signals[name].value = value
            return
        w = self.width[name]
        mask = ((1 << w) - 1) << (w * ch)
        composed = (self._driven[name] & ~mask) | ((int(value) << (w * ch)) & mask)
        if composed != self._driven[name]:
            self._driven[name] = composed
            self.signals[name].value = composed
