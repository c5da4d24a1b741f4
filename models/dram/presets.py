"""Organisation and timing presets, from the JEDEC speed bins.

Primary timings are the speed-bin values in memory-clock cycles (nCK). Refresh timings come
from the device density and the refresh interval in nanoseconds, rounded up to whole cycles, as
a controller would program them. The values are checked against Ramulator 2.1's resolved
presets by the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

from .standard import STANDARDS, Standard


@dataclass(frozen=True)
class OrgPreset:
    name: str
    standard: str
    density_Mb: int
    dq: int
    channel_width: int  # data bits per channel (per pseudo-channel for HBM2)
    level_sizes: tuple[int, ...]  # one entry per level of the standard, channel first (always 1)


@dataclass(frozen=True)
class TimingPreset:
    name: str
    standard: str
    rate_MTps: int
    tCK_ps: int
    primary: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def resolve(self, org: OrgPreset) -> dict[str, int]:
        """Every timing parameter of the standard, in nCK."""
        values = {"rate": self.rate_MTps, "tCK_ps": self.tCK_ps, **self.primary}
        values.update(_SECONDARY[self.standard](self.tCK_ps, org))
        return values


def _cycles(ns: float, tCK_ps: int) -> int:
    """Nanoseconds to memory-clock cycles, rounded up (integer arithmetic in ps)."""
    return -(-round(ns * 1000) // tCK_ps)


# DDR4 all-bank refresh time tRFC1 by device density (Mb -> ns), and the 7.8 us interval.
_DDR4_TRFC_NS = {2048: 160, 4096: 260, 8192: 360, 16384: 550}
_DDR4_TREFI_NS = 7800


def _ddr4_secondary(tCK_ps: int, org: OrgPreset) -> dict[str, int]:
    return {"nRFC": _cycles(_DDR4_TRFC_NS[org.density_Mb], tCK_ps),
            "nREFI": _cycles(_DDR4_TREFI_NS, tCK_ps)}


# HBM2 per pseudo-channel: tRFC by density, single-bank refresh, 3.9 us refresh interval.
_HBM2_TRFC_NS = {1024: 110, 2048: 160, 4096: 260, 8192: 350}
_HBM2_TREFI_NS = 3900


def _hbm2_secondary(tCK_ps: int, org: OrgPreset) -> dict[str, int]:
    banks = math.prod(org.level_sizes[1:4])  # pseudo-channels x bank groups x banks
    return {
        "nRRDS": max(4, _cycles(4, tCK_ps)),
        "nRRDL": max(4, _cycles(4, tCK_ps)),
        "nFAW": max(8, _cycles(15, tCK_ps)),
        "nRFC": _cycles(_HBM2_TRFC_NS[org.density_Mb], tCK_ps),
        "nRFCpb": _cycles(160 if org.density_Mb <= 8192 else 200, tCK_ps),
        "nRREFD": max(4, _cycles(8, tCK_ps)),
        "nREFI": _cycles(_HBM2_TREFI_NS, tCK_ps),
        "nREFIpb": -(-_HBM2_TREFI_NS * 1000 // banks // tCK_ps),
    }


_SECONDARY = {"DDR4": _ddr4_secondary, "HBM2": _hbm2_secondary}


ORG_PRESETS: dict[str, OrgPreset] = {
    p.name: p for p in (
        # 8 Gb x8 DDR4: 8 chips make a 64-bit rank; 1 KiB page per chip, 8 KiB per rank.
        OrgPreset("DDR4_8Gb_x8", "DDR4", 8192, 8, 64, (1, 1, 4, 4, 1 << 16, 1 << 10)),
        OrgPreset("DDR4_16Gb_x8", "DDR4", 16384, 8, 64, (1, 1, 4, 4, 1 << 17, 1 << 10)),
        # 8 Gb HBM2 channel: two 64-bit pseudo-channels, 1 KiB page per pseudo-channel.
        OrgPreset("HBM2_8Gb", "HBM2", 8192, 64, 64, (1, 2, 4, 4, 1 << 16, 1 << 7)),
    )
}

_DDR4_2400R = {"nBL": 4, "nCL": 16, "nRCD": 16, "nRP": 16, "nRAS": 39, "nRC": 55, "nWR": 18,
               "nRTP": 9, "nCWL": 12, "nCCDS": 4, "nCCDL": 6, "nRRDS": 4, "nRRDL": 6, "nWTRS": 3,
               "nWTRL": 9, "nFAW": 26, "nCS": 2}
_DDR4_3200AA = {"nBL": 4, "nCL": 22, "nRCD": 22, "nRP": 22, "nRAS": 52, "nRC": 74, "nWR": 24,
                "nRTP": 12, "nCWL": 16, "nCCDS": 4, "nCCDL": 8, "nRRDS": 4, "nRRDL": 8,
                "nWTRS": 4, "nWTRL": 12, "nFAW": 34, "nCS": 2}
_HBM2_2000 = {"nBL": 2, "nCL": 14, "nRCDRD": 14, "nRCDWR": 12, "nRP": 14, "nRAS": 34, "nRC": 48,
              "nWR": 16, "nRTPL": 5, "nCWL": 5, "nCCDS": 2, "nCCDL": 4, "nWTRS": 6, "nWTRL": 8}

TIMING_PRESETS: dict[str, TimingPreset] = {
    p.name: p for p in (
        TimingPreset("DDR4_2400R", "DDR4", 2400, 833, MappingProxyType(_DDR4_2400R)),
        TimingPreset("DDR4_3200AA", "DDR4", 3200, 625, MappingProxyType(_DDR4_3200AA)),
        TimingPreset("HBM2_2000Mbps", "HBM2", 2000, 1000, MappingProxyType(_HBM2_2000)),
    )
}

# The organisation used when only a timing preset is named.
DEFAULT_ORG = {"DDR4": "DDR4_8Gb_x8", "HBM2": "HBM2_8Gb"}


def standard_of(name: str) -> Standard:
    try:
        return STANDARDS[name]
    except KeyError:
        raise KeyError(f"unknown DRAM standard {name!r}; known: {', '.join(STANDARDS)}") from None
