"""The bounds a hosted app keeps under abuse (irvis.hosting and their wiring in app.py): byte limits on every
way in, checked before anything is stored; results bounded by bytes and age; headers on every response; a
cancelled video stops its work. Library pieces on their own first, then the live app as a visitor reaches it."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from irvis.hosting import (BodyLimit, OutputStore, RequestRefused, SecurityHeaders, decode_data_url, parse_size)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile.server import serve  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LLVIP = REPO.parent / "shared" / "data" / "llvip"


def test_sizes_read_as_gradio_reads_them():
    assert [parse_size(t) for t in ("50mb", "20 MB", "1gb", "512kb", "1000", 7)] == \
        [50 * 2**20, 20 * 2**20, 2**30, 512 * 2**10, 1000, 7]
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_a_data_url_is_held_to_the_limit_before_it_is_decoded():
    data = (LLVIP / "visible/test/200002.jpg").read_bytes()
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    assert decode_data_url(url, len(data)) == data
    with pytest.raises(RequestRefused, match="larger than the limit of"):
        decode_data_url(url, len(data) - 1)
    for bad, sentence in ((url.replace(";base64", ""), "not a base64 data: URL"),
                          ("data:image/png;base64,@@@@", "not valid base64"), ("http://example.org/a.png", "not a base64")):
        with pytest.raises(RequestRefused, match=sentence):
            decode_data_url(bad, 10**9)


def test_results_are_bounded_by_bytes_and_by_age(tmp_path):
    store = OutputStore(tmp_path / "out", max_bytes=3_000_000, max_age_s=3600, busy_s=0)
    megabyte = os.urandom(1_000_000)
    paths = [store.write(f"r{i}.bin", lambda p: p.write_bytes(megabyte)) for i in range(6)]
    assert store.used_bytes() <= 3_000_000
    assert [Path(p).exists() for p in paths] == [False, False, False, True, True, True]  # the oldest went first
    old = Path(paths[-1]).parent
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    store.write("new.bin", lambda p: p.write_bytes(b"x"))
    assert not old.exists()
    with pytest.raises(OSError):  # a failed write leaves nothing, not even its folder
        store.write("broken.bin", lambda p: (_ for _ in ()).throw(OSError("disk full")))
    assert not list((tmp_path / "out").rglob("broken*")) and not list((tmp_path / "out").rglob("*.part"))
    folder = store.folder()
    store.discard(folder)
    assert not folder.exists()


def _asgi_client(limit_other: int, limit_upload: int):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def echo(request):
        return PlainTextResponse(f"read {len(await request.body())}", media_type="image/jpeg")

    app = Starlette(routes=[Route("/gradio_api/upload", echo, methods=["POST"]), Route("/call", echo, methods=["POST"])],
                    middleware=[Middleware(SecurityHeaders),
                                Middleware(BodyLimit, other_bytes=limit_other, upload_bytes=limit_upload)])
    return TestClient(app)


def test_bodies_over_their_route_limit_are_refused_and_every_response_carries_the_headers():
    client = _asgi_client(1000, 5000)
    assert client.post("/call", content=b"x" * 1000).text == "read 1000"
    refused = client.post("/call", content=b"x" * 1001)
    assert refused.status_code == 413 and "over the limit" in refused.text and "handle_file" in refused.text
    assert client.post("/gradio_api/upload", content=b"x" * 5000).text == "read 5000"
    assert client.post("/gradio_api/upload", content=b"x" * 5001).status_code == 413
    for response in (refused, client.post("/call", content=b"ok")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'self' https://huggingface.co" in response.headers["content-security-policy"]


# ---------------------------------------------------------------------------------------------------
# The live app


def _post(url: str, body: bytes, timeout: float = 60) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _call(url: str, api: str, data: list) -> str:
    status, text = _post(f"{url}gradio_api/call/{api}", json.dumps({"data": data}).encode())
    assert status == 200, text
    with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{json.loads(text)['event_id']}", timeout=120) as r:
        return r.read().decode()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(["--max-file-size", "1mb"], tmp_path_factory.mktemp("server")) as s:
        yield s


def test_headers_on_the_page_and_on_files(server):
    with urllib.request.urlopen(server.url, timeout=30) as r:
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors" in r.headers["Content-Security-Policy"]
    boundary = "irvisboundary"  # HTML bytes named .jpg, uploaded as a browser would
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"page.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + b"<html><script>alert(1)</script></html>" + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(server.url + "gradio_api/upload", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as r:
        uploaded = json.loads(r.read())
    with urllib.request.urlopen(f"{server.url}gradio_api/file={uploaded[0]}", timeout=30) as r:
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert not r.headers["Content-Type"].startswith("text/html")


def test_an_over_limit_paste_is_refused_before_anything_is_written(server):
    """1.2 MB of image as a data: URL against a 1 MB limit: the visitor reads the limit, and no byte of it is on
    disk afterwards (it used to be written to an upload folder no sweep reached)."""
    before = _files(server.upload_folder)
    payload = base64.b64encode(os.urandom(1_200_000)).decode()
    text = _call(server.url, "vis2ir", [{"url": f"data:image/png;base64,{payload}", "meta": {"_type": "gradio.FileData"}},
                                        None, "white-hot"])
    assert "larger than the limit of 1 MB" in text
    assert _files(server.upload_folder) == before


def test_twenty_huge_bodies_are_refused_at_the_door_and_memory_stays(server):
    """The finding: 20 queued 63 MB data URLs took the server from 0.9 to 6.5 GB. Bodies that are not file
    uploads are now refused over 4 MB before they are read."""
    body = json.dumps({"data": [{"url": "data:image/png;base64," + "A" * 63_000_000,
                                 "meta": {"_type": "gradio.FileData"}}, None]}).encode()
    start_rss = server.rss_mb()
    answers = []

    def send():
        try:
            answers.append(_post(f"{server.url}gradio_api/call/vis2ir", body, timeout=120)[0])
        except (urllib.error.URLError, ConnectionError):  # refused mid-upload: the server closed the connection
            answers.append("closed")

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 20 and set(answers) <= {413, "closed"}, answers
    # the status, from the declared length alone: the server answers before reading any of the body
    import http.client
    from urllib.parse import urlparse

    address = urlparse(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.putrequest("POST", "/gradio_api/call/vis2ir")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and b"over the limit of 4 MB" in response.read()
    assert server.rss_mb() - start_rss < 300, (start_rss, server.rss_mb())


def _clip(path: Path, frames: int, size=(640, 512), rate: int = 30) -> Path:
    frame = np.asarray(Image.open(LLVIP / "visible/test/200002.jpg").convert("RGB").resize(size))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(np.roll(frame, i, axis=1), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cancelled_videos_stop_their_work_and_leave_nothing(server, tmp_path):
    """Four videos started and cancelled, one after another: afterwards the server is idle (no decoder still
    reading, no translator still running) and has written no video, not even an empty folder for one."""
    from gradio_client import Client, handle_file

    clip = _clip(tmp_path / "long.mp4", 300)  # 10 s at 30 frames/s: within the limits, seconds of work
    client = Client(server.url, verbose=False)
    outputs = server.upload_folder / "irvis-outputs"
    for _ in range(4):
        job = client.submit(handle_file(str(clip)), api_name="/vis2ir_video")
        deadline = time.time() + 60
        while time.time() < deadline and not any(u.progress_data for u in [job.status()] if u.progress_data):
            time.sleep(0.2)
        assert job.status().progress_data, "the video never started"
        job.cancel()
    time.sleep(3)  # one batch of frames at most
    used = _cpu_seconds(server.proc.pid)
    time.sleep(2)
    assert _cpu_seconds(server.proc.pid) - used < 0.3, "work went on after every video was cancelled"
    assert not [p for p in _files(outputs) if p.suffix == ".mp4"]
    assert not [d for d in outputs.iterdir() if d.is_dir() and not any(d.iterdir())] if outputs.exists() else True
