"""irvis.uploads on its own: what a request may make the server read, and what of its paths a visitor reads back."""

from __future__ import annotations

import base64
import os

import pytest

from irvis.hosting import OutputStore, RequestRefused
from irvis.uploads import (PROJECT_ROOT, accept_image, hide_paths, is_upload, name_files, public_name, scrub_paths,
                           uploaded_file)

REFUSAL = "Only images uploaded to this app can be used: upload the file."


@pytest.fixture
def folders(tmp_path):
    uploads, cache = tmp_path / "uploads", tmp_path / "cache"
    (uploads / "abc").mkdir(parents=True)
    cache.mkdir()
    return uploads, cache


def test_only_files_inside_the_upload_folders_are_accepted(tmp_path, folders):
    uploads, cache = folders
    inside, cached = uploads / "abc" / "in.jpg", cache / "example.jpg"
    inside.write_bytes(b"x")
    cached.write_bytes(b"x")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    assert uploaded_file(str(inside), folders) == str(inside)
    assert is_upload(str(cached), folders)
    for path in (outside, uploads / ".." / "secret.jpg", uploads, "/etc/passwd"):
        assert not is_upload(str(path), folders), path
        with pytest.raises(RequestRefused, match=REFUSAL):
            uploaded_file(str(path), folders)


def test_a_link_out_of_the_uploads_is_refused(tmp_path, folders):
    uploads, _ = folders
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    os.symlink(outside, uploads / "abc" / "link.jpg")
    os.symlink(tmp_path, uploads / "abc" / "dir")
    for path in (uploads / "abc" / "link.jpg", uploads / "abc" / "dir" / "secret.jpg"):
        with pytest.raises(RequestRefused, match=REFUSAL):
            uploaded_file(str(path), folders)


def test_the_refusal_is_the_same_whether_the_path_exists_or_not(tmp_path, folders):
    existing = tmp_path / "here.jpg"
    existing.write_bytes(b"x")
    messages = []
    for path in (existing, tmp_path / "not-here.jpg", None, ""):
        with pytest.raises(RequestRefused) as refused:
            uploaded_file(path and str(path), folders)
        messages.append(str(refused.value))
    assert set(messages) == {REFUSAL}
    with pytest.raises(RequestRefused, match="Only videos uploaded"):
        uploaded_file(str(existing), folders, "videos")


def test_pasted_images_are_bounded_and_stored(tmp_path, folders):
    outputs = OutputStore(tmp_path / "out")
    url = "data:image/png;base64," + base64.b64encode(b"0123456789").decode()
    stored = accept_image(url, None, folders, max_bytes=10, outputs=outputs)
    assert open(stored, "rb").read() == b"0123456789" and is_upload(stored, [tmp_path / "out"])
    with pytest.raises(RequestRefused, match="larger than the limit"):
        accept_image(url, None, folders, max_bytes=9, outputs=outputs)
    with pytest.raises(RequestRefused, match=REFUSAL):  # a path, not a data: URL, is held to the uploads
        accept_image(None, str(tmp_path / "secret.jpg"), folders, max_bytes=10, outputs=outputs)


def test_paths_are_scrubbed_from_messages(tmp_path):
    assert scrub_paths(f"weights: {tmp_path}/my-run; see https://example.org/a/b") == \
        "weights: …/my-run; see https://example.org/a/b"
    assert name_files(f"cannot read {tmp_path}/up/x.jpg or {tmp_path}/up/y.png", f"{tmp_path}/up/x.jpg",
                      f"{tmp_path}/up/y.png", None) == "cannot read x.jpg or y.png"
    assert public_name(PROJECT_ROOT / "weights" / "vis2ir") == "weights/vis2ir"
    assert public_name(tmp_path / "my-run") == "…/my-run"
    assert public_name("someone/irvis-vis2ir") == "someone/irvis-vis2ir"
    message = hide_paths(f"No generator: {tmp_path / 'run'}/config.json is missing", tmp_path / "run")
    assert str(tmp_path) not in message and "…/run/config.json" in message
