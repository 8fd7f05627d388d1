"""Run the fake Binance as a process: `python -m fake_binance --port 9900 --tick 1`.

Prints one line with its URL, moves the market every `--tick` seconds (0:
never) and exits 0 on SIGINT or SIGTERM.  Other processes drive it through
the /fake/... control API described in `fake_binance.server`.
`--ws-port 9443` also serves the market streams (`fake_binance.streams`,
which needs the `websockets` package) from the same market, and prints a
second line with their URL. `--replay FILE` (with `--ws-port`) serves a file
the exporter wrote with `--record` instead: its frames on the streams, its
snapshots on /api/v3/depth (`fake_binance.replay`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import replay
from .market import Market
from .server import FakeBinance


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fake_binance",
                                     description="Fake Binance SPOT REST API on localhost.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=9900, help="port, 0 = any free (9900)")
    parser.add_argument("--tick", type=float, default=1.0,
                        help="seconds between market steps, 0 = never (1.0)")
    parser.add_argument("--seed", type=int, default=7, help="market seed (7)")
    parser.add_argument("--extra-symbols", type=int, default=0,
                        help="synthetic symbols on top of the built-in ones (0)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every /api answer (0)")
    parser.add_argument("--ws-port", type=int, default=None,
                        help="also serve the websocket market streams on this port, "
                             "0 = any free (off)")
    parser.add_argument("--replay", metavar="FILE", default=None,
                        help="serve this --record file's frames and depth snapshots "
                             "(needs --ws-port)")
    parser.add_argument("--replay-speed", type=float, default=1.0,
                        help="replay this many times faster than recorded (1.0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 1 if the port cannot be bound."""
    parser = _parser()
    args = parser.parse_args(argv)
    recording = None
    if args.replay is not None:
        if args.ws_port is None or args.replay_speed <= 0:
            parser.error("--replay needs --ws-port, and --replay-speed must be > 0")
        try:
            recording = replay.load(args.replay)
        except OSError as exc:
            parser.error(f"cannot read {args.replay}: {exc}")
        market: Market = replay.ReplayMarket(recording, seed=args.seed,
                                             extra_symbols=args.extra_symbols)
    else:
        market = Market(seed=args.seed, extra_symbols=args.extra_symbols)
    fake = FakeBinance(market, host=args.host, port=args.port)
    fake.set_latency(args.latency)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    streams = None
    if args.ws_port is not None:
        # Imported only here: the REST fake alone stays standard library only
        # (the demo image installs nothing else).
        from .streams import FakeStreams  # pylint: disable=import-outside-toplevel
        streams = FakeStreams(market, host=args.host, port=args.ws_port, replay=recording,
                              replay_speed=args.replay_speed)
    try:
        fake.start()
    except OSError as exc:
        print(f"fake Binance: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    if streams is not None:
        try:
            streams.start()
        except OSError as exc:
            fake.stop()
            print(f"fake Binance: cannot listen on {args.host}:{args.ws_port}: {exc}",
                  file=sys.stderr)
            return 1
    print(f"fake Binance SPOT API on {fake.url} (seed {args.seed}, "
          f"{len(market.symbols())} symbols, tick {args.tick:g} s)", flush=True)
    if streams is not None:
        print(f"fake Binance streams on {streams.url}", flush=True)
    try:
        while not stop.wait(args.tick if args.tick > 0 else None):
            market.step()
    finally:
        if streams is not None:
            streams.stop()
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
