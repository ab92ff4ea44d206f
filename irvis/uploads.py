"""Upload confinement: what a request may make the server read, and what of its paths a visitor reads back.

A request to a served app may name any path. An input is read only when it lies, links resolved, inside the
folders the server chose for uploads (the app passes Gradio's upload folder and examples cache; this module
knows nothing of Gradio); a pasted data: URL is held to the byte limit before it is decoded, then stored with
the results. Messages a visitor reads name uploads by their file name and weights folders by their place in
the project, never by a server path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from irvis.hosting import OutputStore, RequestRefused, decode_data_url, is_within

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # weights/ and samples/ of a checkout are named from here


def is_upload(path: str | os.PathLike, folders: Iterable[str | os.PathLike]) -> bool:
    """Whether a path a request names is a file uploaded to this server (inside one of `folders`, links
    resolved; not any other file on it). The answer is the same whether the path exists or not."""
    return is_within(path, folders)


def uploaded_file(path: str | None, folders: Iterable[str | os.PathLike], what: str = "images") -> str:
    """The path, if it names an upload; else RequestRefused with one sentence, the same whether the path
    exists or not (an answer never tells which server paths exist)."""
    if not path or not is_upload(path, folders):
        raise RequestRefused(f"Only {what} uploaded to this app can be used: upload the file.")
    return path


def accept_image(url: str | None, path: str | None, folders: Iterable[str | os.PathLike], max_bytes: int,
                 outputs: OutputStore) -> str:
    """The file an image input names, checked before anything opens it: a base64 data: URL is held to
    max_bytes before it is decoded, then written to `outputs`; any other input must be an upload."""
    if (url or "").startswith("data:"):
        data = decode_data_url(url, max_bytes)
        return outputs.write("pasted image", lambda staging: staging.write_bytes(data))
    return uploaded_file(path, folders)


def name_files(message: str, *paths: str | os.PathLike | None) -> str:
    """A message about uploads with each upload's server path replaced by its file name."""
    for path in paths:
        if path:
            message = message.replace(str(path), Path(path).name)
    return message


def public_name(spec: str | os.PathLike, root: str | os.PathLike = PROJECT_ROOT) -> str:
    """How a page names a weights source: a Hub repo id as given, a folder of the project (`root`) by its path
    in it, any other folder by its own name only. Visitors never see where the server keeps its files."""
    text = str(spec)
    path = Path(text).expanduser()
    if not path.is_absolute() and not text.startswith((".", "~")) and not path.exists():
        return text  # a Hub repo id (OWNER/NAME)
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return f"…/{path.name}" if path.name else "a local folder"


def hide_paths(message: str, spec: str | os.PathLike, root: str | os.PathLike = PROJECT_ROOT) -> str:
    """A message about a weights source with its paths (as given, and resolved) replaced by its public name."""
    for text in {str(spec), str(Path(str(spec)).expanduser().resolve())}:
        message = message.replace(text, public_name(spec, root))
    return message


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.~-]+/)+([\w.~-]+)")


def scrub_paths(text: str) -> str:
    """Absolute paths in text a visitor reads (reports and cards written on the server) -> their last part."""
    return _ABSOLUTE_PATH.sub(lambda m: f"…/{m.group(1)}", text)
