"""Upload confinement: what a request may read, and what a visitor may learn of the server's files.

A request to a served app may name any path. An input is read only when it lies, links resolved, inside
the folders the server chose for uploads (the app passes Gradio's upload folder and examples cache; this
module knows nothing of Gradio); a pasted data: URL is held to the byte limit before it is decoded, then
stored with the results. Messages a visitor reads name files by their file name and weights folders by their
place in the project, never by a server path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from irvis.hosting import OutputStore, RequestRefused, decode_data_url, is_within

NOT_AN_UPLOAD = "Only images uploaded to this app can be used: upload the file."
NOT_A_VIDEO_UPLOAD = "Only videos uploaded to this app can be used: upload the file."
REFUSED_IMAGE = "This image cannot be used"
REFUSED_VIDEO = "This video cannot be used"


def is_upload(path: str | os.PathLike, folders: Iterable[str | os.PathLike]) -> bool:
    """Whether a path a request names is a file uploaded to this server (inside one of `folders`, not any
    other file on it). The answer is the same whether the path exists or not."""
    return is_within(path, folders)


def receive_image(url: str | None, path: str | None, folders: Iterable[str | os.PathLike], outputs: OutputStore,
                  max_bytes: int) -> str:
    """The file an image input names, checked before anything opens it: a data: URL is decoded under
    max_bytes and written to `outputs`; a path must be an upload. RequestRefused otherwise."""
    if (url or "").startswith("data:"):  # held to the upload limit before it is decoded or stored
        data = decode_data_url(url, max_bytes)
        return outputs.write("pasted image", lambda staging: staging.write_bytes(data))
    if not path or not is_upload(path, folders):
        raise RequestRefused(NOT_AN_UPLOAD, REFUSED_IMAGE)
    return path


def check_video(path: str, folders: Iterable[str | os.PathLike]) -> str:
    """A video input's path, if it is an upload (RequestRefused otherwise)."""
    if not is_upload(path, folders):
        raise RequestRefused(NOT_A_VIDEO_UPLOAD, REFUSED_VIDEO)
    return path


def file_names(message: str, *paths: str | os.PathLike | None) -> str:
    """A message about uploads with each upload's server path replaced by its file name."""
    for path in paths:
        if path:
            message = message.replace(str(path), Path(path).name)
    return message


def public_name(spec: str | os.PathLike, root: str | os.PathLike) -> str:
    """How a page names a weights source: a Hub repo id as given, a folder inside the project `root` by its
    path in it, any other folder by its own name only. Visitors never see where the server keeps its files."""
    text = str(spec)
    path = Path(text).expanduser()
    if not path.is_absolute() and not text.startswith((".", "~")) and not path.exists():
        return text  # a Hub repo id (OWNER/NAME)
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return f"…/{path.name}" if path.name else "a local folder"


def hide_paths(message: str, spec: str | os.PathLike, root: str | os.PathLike) -> str:
    """A message about a weights source with its paths (as given and resolved) replaced by its public name."""
    for text in {str(spec), str(Path(str(spec)).expanduser().resolve())}:
        message = message.replace(text, public_name(spec, root))
    return message


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.~-]+/)+([\w.~-]+)")


def scrub_paths(text: str) -> str:
    """Absolute paths in text a visitor reads (reports and cards written on the server) -> their last part."""
    return _ABSOLUTE_PATH.sub(lambda m: f"…/{m.group(1)}", text)


def gallery_name(spec: str | os.PathLike) -> str:
    """A gallery as a page names it: a Hub dataset by its address, a folder by its own name only."""
    spec = str(spec)
    return spec if spec.startswith("hf://") else (Path(spec).name or spec)
