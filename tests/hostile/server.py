"""`python app.py` in a subprocess on 127.0.0.1, its output in a log file, its peak memory readable."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path
    upload_folder: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak_rss_mb(self) -> float:
        """The server process's peak resident memory (VmHWM), in MB; Linux only."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc: peak memory is measured on Linux only")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc")

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve(args: list[str], workdir: Path, env: dict | None = None, timeout: float = 600.0,
          space_app: str | None = None):
    """Start the app with args; Gradio's upload folder is workdir/uploads (so a test knows where uploads
    go). Yields a Server; always stops it. space_app: start that file as a Hugging Face Space does instead,
    with no flags, listening on GRADIO_SERVER_NAME=0.0.0.0 at GRADIO_SERVER_PORT."""
    upload_folder = workdir / "uploads"
    upload_folder.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
                "GRADIO_TEMP_DIR": str(upload_folder), **(env or {})}
    for name in ("IRVIS_GALLERY", "IRVIS_WEIGHTS_IR2VIS", "IRVIS_WEIGHTS_VIS2IR", "IRVIS_MAX_PIXELS"):
        if not env or name not in env:
            full_env.pop(name, None)
    port = free_port()
    if space_app:
        full_env.update(GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT=str(port))
        command = [sys.executable, str(REPO / space_app), *args]
    else:
        command = [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port), *args]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}/", proc, log, upload_folder)
    start = time.perf_counter()
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{server.output()[-3000:]}")
            try:
                with urllib.request.urlopen(server.url + "gradio_api/info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"app.py not ready after {timeout:.0f} s:\n{server.output()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
