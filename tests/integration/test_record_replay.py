"""`--record` and the fake's replay: a recorded session replays into the same books."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from websockets.sync.client import connect

from binance_exporter.binance.recorder import Recorder
from fake_binance import replay
from fake_binance.market import Market
from fake_binance.server import FakeBinance
from fake_binance.streams import FakeStreams
from tests.support import ROOT, Exporter, sample, wait_until

STREAM = ("--source", "stream", "--no-analytics", "--update-interval", "0.5",
          "--refresh-interval", "30")


def book_state(samples: dict) -> dict[str, tuple[float, float | None]]:
    """(update id, spread or None) of every book the exporter serves."""
    ids = {labels[0][1]: value for (name, labels), value in samples.items()
           if name == "binance_order_book_update_id"}
    return {symbol: (ids[symbol], sample(samples, "binance_spread", symbol=symbol))
            for symbol in ids}


class RecordReplayTest(unittest.TestCase):
    """Record a session against the fake, replay the file, compare the books."""

    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(directory.cleanup)
        self.path = Path(directory.name) / "session.jsonl.gz"

    def fakes(self, market: Market, recording: replay.Recording | None = None) -> FakeStreams:
        """REST and streams on `market`, stopped at cleanup; returns the streams."""
        self.rest = FakeBinance(market).start()  # pylint: disable=attribute-defined-outside-init
        self.addCleanup(self.rest.stop)
        streams = FakeStreams(market, ping_interval=5, replay=recording).start()
        self.addCleanup(streams.stop)
        return streams

    def record(self) -> dict[str, tuple[float, float | None]]:
        """Run an exporter with --record while the market moves; its final books."""
        market = Market(seed=7)
        for _ in range(2):  # recorded books start past step 0, where a replay market stands
            market.step()
        streams = self.fakes(market)
        exporter = Exporter(self.rest.url, *STREAM, "--stream-url", streams.url,
                            "--record", str(self.path))
        self.addCleanup(exporter.close)
        exporter.wait_ready(timeout=15)
        for _ in range(4):
            market.step()
            streams.flush()
        tracked = list(book_state(exporter.scrape()))

        def caught_up():
            samples = exporter.scrape()
            return samples if all(
                sample(samples, "binance_order_book_update_id", symbol=s)
                == market.depth(s, 1)["lastUpdateId"] for s in tracked) else None

        samples = wait_until(caught_up, timeout=10)
        self.assertEqual(exporter.stop(), 0)  # SIGTERM closes the file properly
        self.frames_counted = sample(  # pylint: disable=attribute-defined-outside-init
            samples, "binance_stream_messages_total", stream_type="depth@100ms")
        return book_state(samples)

    def test_the_file_holds_every_frame_and_snapshot(self):
        recorded = self.record()
        with gzip.open(self.path, "rt", encoding="utf-8") as lines:
            records = [json.loads(line) for line in lines]
        self.assertTrue(all(isinstance(r["t"], float) for r in records))
        frames = [r for r in records if "m" in r]
        depth_frames = [f for f in frames if "@depth@100ms" in json.loads(f["m"]).get("stream", "")]
        self.assertEqual(len(depth_frames), self.frames_counted)
        self.assertGreater(len(depth_frames), 0)
        snapshots = {r["depth"] for r in records if "depth" in r}
        self.assertEqual(snapshots, set(recorded))  # every book started from a recorded one
        self.assertEqual([r["t"] for r in records], sorted(r["t"] for r in records))

    def test_a_replay_builds_the_same_books(self):
        recorded = self.record()
        recording = replay.load(str(self.path))
        streams = self.fakes(replay.ReplayMarket(recording, seed=7), recording)
        exporter = Exporter(self.rest.url, *STREAM, "--stream-url", streams.url)
        self.addCleanup(exporter.close)
        exporter.wait_healthy(timeout=15)
        replayed = wait_until(lambda: (state := book_state(exporter.scrape())) == recorded
                              and state, timeout=20)
        self.assertEqual(replayed, recorded)
        # The replay served the recorded snapshots, not the simulated market's.
        self.assertEqual(sample(exporter.scrape(), "binance_order_book_resyncs_total",
                                symbol=next(iter(recorded))) or 0, 0)

    def test_a_file_cut_short_reads_up_to_its_last_whole_line(self):
        self.record()
        whole = replay.load(str(self.path))
        data = gzip.decompress(self.path.read_bytes())
        cut = data[:data.rindex(b"\n", 0, len(data) - 1) + 20]  # half of the last line
        self.path.write_bytes(gzip.compress(cut)[:-8])  # and no gzip trailer
        partial = replay.load(str(self.path))
        self.assertEqual(len(partial.frames) + sum(map(len, partial.snapshots.values())),
                         len(whole.frames) + sum(map(len, whole.snapshots.values())) - 1)


class RecordOptionTest(unittest.TestCase):
    """--record is refused where it cannot work, with one line and exit 2."""

    def test_bad_uses(self):
        for args, message in (
            (("--record", "/tmp/x.gz"), "--record needs --source stream"),
            (("--source", "stream", "--record", "/nonexistent/dir/x.gz"), "cannot write"),
        ):
            with self.subTest(args=args):
                exporter = Exporter("http://127.0.0.1:9", *args)
                self.addCleanup(exporter.close)
                self.assertEqual(exporter.process.wait(20), 2)
                self.assertIn(message, exporter.output()[1])



class RecorderTest(unittest.TestCase):
    """The recorder on its own: what it writes, and a disk that fills up."""

    def test_lines_read_back_in_order(self):
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "r.jsonl.gz"
            times = iter([10.0, 10.5, 11.0])
            recorder = Recorder(str(path), clock=lambda: next(times))
            recorder.snapshot("ETHBTC", 1000, {"lastUpdateId": 3, "bids": [], "asks": []})
            recorder.message('{"stream":"ethbtc@depth@100ms","data":{}}')
            recorder.close()
            recorder.message("after close")  # dropped, no error
            with gzip.open(path, "rt", encoding="utf-8") as lines:
                records = [json.loads(line) for line in lines]
        self.assertEqual(records, [
            {"t": 10.0, "depth": "ETHBTC", "limit": 1000,
             "answer": {"lastUpdateId": 3, "bids": [], "asks": []}},
            {"t": 10.5, "m": '{"stream":"ethbtc@depth@100ms","data":{}}'},
        ])
        self.assertEqual(recorder.lines, 2)

    @unittest.skipUnless(Path("/dev/full").exists(), "needs /dev/full")
    def test_a_full_disk_stops_the_recording_with_one_error(self):
        recorder = Recorder("/dev/full")
        noise = os.urandom(200_000).hex()  # does not compress: the write reaches the disk
        with self.assertLogs("binance_exporter.binance.recorder", "ERROR") as logs:
            for _ in range(5):
                recorder.message(noise)
            recorder.close()
        self.assertEqual(len(logs.records), 1)
        self.assertIn("recording stopped", logs.output[0])

    @unittest.skipUnless(Path("/dev/full").exists(), "needs /dev/full")
    def test_a_full_disk_at_close_is_one_error(self):
        recorder = Recorder("/dev/full")
        recorder.message("{}")  # small: still in the buffers until close
        with self.assertLogs("binance_exporter.binance.recorder", "ERROR") as logs:
            recorder.close()
        self.assertEqual(len(logs.records), 1)
        self.assertIn("could not finish", logs.output[0])



class ReplayCommandTest(unittest.TestCase):
    """`python -m fake_binance --replay FILE`, read by a raw (not combined) client."""

    def test_a_raw_client_gets_the_payloads(self):
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "r.jsonl.gz"
            payloads = [{"e": "depthUpdate", "E": 1, "s": "ETHBTC", "U": u, "u": u,
                         "b": [["0.05", "1"]], "a": []} for u in (7, 8)]
            recorder = Recorder(str(path))
            for payload in payloads:
                recorder.message(json.dumps({"stream": "ethbtc@depth@100ms", "data": payload}))
            recorder.close()
            process = subprocess.Popen(  # pylint: disable=consider-using-with
                [sys.executable, "-m", "fake_binance", "--port", "0", "--ws-port", "0",
                 "--tick", "0", "--replay", str(path), "--replay-speed", "10"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.addCleanup(process.communicate)  # cleanups run last first: kill, then reap
            self.addCleanup(process.kill)
            process.stdout.readline()  # the REST line
            url = re.search(r"ws://127\.0\.0\.1:\d+", process.stdout.readline())
            self.assertIsNotNone(url)
            with connect(url.group(0) + "/ws/ethbtc@depth@100ms", open_timeout=5) as connection:
                received = [connection.recv(timeout=5) for _ in payloads]
        # Compact, as Binance (and every other frame of the fake) sends it.
        self.assertEqual(received, [json.dumps(p, separators=(",", ":")) for p in payloads])


if __name__ == "__main__":
    unittest.main()
