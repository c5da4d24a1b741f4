"""Pin access to one or more AXI4 read channels whose signals are flattened vectors.

A DUT with N read channels exposes e.g. `m_axi_arvalid[N-1:0]` and `m_axi_araddr[N*32-1:0]`.
Several per-channel responders drive slices of the same vectors, so writes go through this
port, which keeps the composed value of every driven vector and writes it whole.
"""

from __future__ import annotations


class AxiReadPort:
    INPUTS = ("arvalid", "araddr", "arlen", "arsize", "arburst", "rready")
    OUTPUTS = ("arready", "rvalid", "rdata", "rresp", "rlast")

    def __init__(self, dut, prefix: str = "m_axi", channels: int = 1):
        self.dut = dut
        self.channels = channels
        self.signals = {}
        for name in self.INPUTS + self.OUTPUTS:
            handle = getattr(dut, f"{prefix}_{name}", None)
            if handle is None:
                raise AttributeError(f"{dut._name} has no signal {prefix}_{name}")
            self.signals[name] = handle
        self.width = {name: len(h) // channels for name, h in self.signals.items()}
        self._driven = {name: 0 for name in self.OUTPUTS}
        for name in self.OUTPUTS:
            self.signals[name].value = 0

    def get(self, name: str, ch: int) -> int:
        if self.channels == 1:  # once or twice per beat: no slicing
            return int(self.signals[name].value)
        w = self.width[name]
        return (int(self.signals[name].value) >> (w * ch)) & ((1 << w) - 1)

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
