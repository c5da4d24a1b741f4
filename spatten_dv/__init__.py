"""spatten-dv: verification harness for a hand-written SpAtten core."""

__version__ = "0.1.0"
