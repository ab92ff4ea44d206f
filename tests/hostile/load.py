"""A bounded load test of the app on 127.0.0.1: N requests with real frames of the sample data, C at a
time, each answer checked (a PNG at the input's resolution); prints p50/p95 latency and requests/s.

    python tests/hostile/load.py                       # starts the app on the shipped weights, 50 requests, 50 at once
    python tests/hostile/load.py --url http://127.0.0.1:7860/ --requests 20 --concurrency 5

Latencies include queueing: with --concurrency 50 and the app's default of one translation at a time, p95
is about the time the server needs for all of them. Timings depend on the machine and on what else runs
on it; the script reports them, it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # irvis, and this folder as the package `hostile`
DATA = REPO.parent / "shared" / "data"


def frames(root: Path, n: int) -> list[Path]:
    """n visible frames of the root's test split, cycling over them."""
    from irvis.data import discover_pairs

    pairs = discover_pairs([root], "test").pairs
    if not pairs:
        raise SystemExit(f"no test pairs in {root}")
    return [pairs[i % len(pairs)].visible for i in range(n)]


def run(url: str, inputs: list[Path], concurrency: int, api_name: str = "/vis2ir") -> dict:
    """Send every input, `concurrency` at a time; returns latencies (s), failures, wall time, requests/s."""
    from gradio_client import Client, handle_file

    downloads = Path(tempfile.mkdtemp(prefix="irvis-load-"))
    # one client for all threads (it is made for concurrent calls); a patient one: on a busy machine a
    # request waits in the queue for as long as the ones ahead of it take
    client = Client(url, verbose=False, download_files=str(downloads), httpx_kwargs={"timeout": 600},
                    max_workers=max(concurrency, 1))

    def one(i: int):
        path = inputs[i]
        start = time.perf_counter()
        try:
            prediction, *_ = client.predict(handle_file(str(path)), None, api_name=api_name)
            seconds = time.perf_counter() - start
            with Image.open(path) as a, Image.open(prediction) as b:
                if b.format != "PNG" or a.size != b.size:
                    return seconds, f"{path.name}: got {b.format} {b.size}, expected PNG {a.size}"
                b.load()  # a truncated file fails here
            return seconds, None
        except Exception as e:  # the failure is the result: counted and listed
            return time.perf_counter() - start, f"{path.name}: {type(e).__name__}: {e}"

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(len(inputs))))
    wall = time.perf_counter() - start
    latencies = np.array([s for s, _ in results])
    return {"requests": len(inputs), "concurrency": concurrency, "failures": [e for _, e in results if e],
            "p50_s": float(np.percentile(latencies, 50)), "p95_s": float(np.percentile(latencies, 95)),
            "wall_s": wall, "requests_per_s": len(inputs) / wall}


def describe(result: dict, what: str = "") -> str:
    return (f"{result['requests']} requests{what}, {result['concurrency']} at a time: "
            f"{result['requests'] - len(result['failures'])} correct, p50 {result['p50_s']:.2f} s, "
            f"p95 {result['p95_s']:.2f} s, {result['requests_per_s']:.2f} requests/s ({result['wall_s']:.1f} s in all)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running app (default: start one on the shipped weights)")
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--data", default=str(DATA / "llvip"), help="LLVIP-layout root whose test frames are sent")
    p.add_argument("--direction", choices=["vis2ir", "ir2vis"], default="vis2ir")
    args = p.parse_args(argv)
    inputs = frames(Path(args.data), args.requests)
    if args.direction == "ir2vis":
        inputs = [Path(str(f).replace("/visible/", "/infrared/")) for f in inputs]
    with Image.open(inputs[0]) as img:
        what = f" of {img.width}x{img.height} {Path(args.data).name} frames to /{args.direction}"
    if args.url:
        result = run(args.url, inputs, args.concurrency, f"/{args.direction}")
    else:
        from hostile.server import serve

        with tempfile.TemporaryDirectory() as tmp, serve([], Path(tmp)) as server:
            rss = server.rss_mb()
            result = run(server.url, inputs, args.concurrency, f"/{args.direction}")
            print(f"server RSS: {rss:.0f} MB idle, {server.peak_rss_mb():.0f} MB peak")
    print(describe(result, what))
    for failure in result["failures"]:
        print(f"  failed: {failure}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
