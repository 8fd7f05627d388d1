"""A fake Binance SPOT REST API for tests, demos and soak runs (stdlib only).

`Market` simulates the exchange deterministically; `FakeBinance` serves it over
HTTP/1.1 on 127.0.0.1 with Binance's weights, errors and headers, plus fault
injection.  `python -m fake_binance` runs it as a process.
"""

from .market import BUILTIN_SYMBOLS, BinanceError, Market, SymbolSpec
from .server import FAULTS, FakeBinance, RequestRecord

__all__ = ["BUILTIN_SYMBOLS", "FAULTS", "BinanceError", "FakeBinance", "Market",
           "RequestRecord", "SymbolSpec"]
