"""Local-first weight resolution and Hub upload (checked before a long job, reported rather than raised after one).

A path that exists is a path; anything else shaped like `owner/name` is a Hub repo id, fetched with
huggingface_hub (which honours HF_HUB_OFFLINE and its cache). Nothing is downloaded at import time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from irvis.generator_folder import (CARD_FILE, CONFIG_NAME, EVALUATION_FILE, EVALUATION_REPORT, FIT_FILE, INFERENCE_FILE,
                                    TRAINING_CONFIG_FILE, WEIGHTS_NAME, WeightsError)

# What a generator folder publishes; training state (optimizers, checkpoints) never leaves the machine.
# evaluation.png stays local: it shows dataset frames, which this project does not republish.
UPLOAD_PATTERNS = (CONFIG_NAME, WEIGHTS_NAME, CARD_FILE, "samples/*.png", "eval/*.json", "eval/*.md", TRAINING_CONFIG_FILE,
                   EVALUATION_FILE, EVALUATION_REPORT, INFERENCE_FILE, FIT_FILE)


def resolve_weights(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """A local generator folder, or the snapshot of a Hub repo with one. Clear errors either way."""
    path = Path(path_or_repo_id).expanduser()
    if path.exists():
        if not path.is_dir():
            raise WeightsError(f"{path} is a file; give the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
        return path
    repo_id = str(path_or_repo_id)
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/", "~")):
        raise WeightsError(f"{repo_id}: no such folder, and not a Hub repo id (owner/name)")
    wanted = [CONFIG_NAME, WEIGHTS_NAME, INFERENCE_FILE, CARD_FILE, TRAINING_CONFIG_FILE, EVALUATION_FILE]
    return snapshot(repo_id, WeightsError, revision=revision, allow_patterns=wanted,
                    hint="download it once with network, or pass a local folder")


def snapshot(repo_id: str, error: type[Exception], repo_type: str = "model", revision: str | None = None,
             allow_patterns: list[str] | None = None, hint: str = "give a local folder instead",
             name: str | None = None) -> Path:
    """Every Hub download irvis makes: a snapshot folder of repo_id (huggingface_hub's cache, which is all there
    is offline), or `error` with one sentence naming `name` (default: the repo id) and what to do."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    name = name or repo_id
    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, allow_patterns=allow_patterns))
    except LocalEntryNotFoundError:
        raise error(f"{name}: not a local folder, not in the Hugging Face cache, and the Hub cannot be reached "
                    f"(offline, or HF_HUB_OFFLINE=1); {hint}") from None
    except (RepositoryNotFoundError, HFValidationError) as e:
        kind = "dataset" if repo_type == "dataset" else "model"
        raise error(f"{name}: no such {kind} on the Hub ({type(e).__name__})") from None


def upload_plan(folder: str | os.PathLike) -> list[str]:
    """Exactly the files (relative paths) that push_folder would upload, sorted."""
    from fnmatch import fnmatch

    folder = Path(folder)
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(f for f in files if any(fnmatch(f, pattern) for pattern in UPLOAD_PATTERNS))


def push_folder(folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload irvis generator") -> str:
    """Create the model repo if needed and upload the planned files; returns the commit URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    for required in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / required).is_file():
            raise WeightsError(f"{folder} has no {required}: nothing to push")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, allow_patterns=upload_plan(folder),
                             commit_message=commit_message)
    return str(info)


class HubError(ValueError):
    """A push that cannot work as asked (no network allowed, no token, a malformed repo id)."""


def check_push_ready(repo_id: str) -> None:
    """Fail before training, not after hours of it, when a push at the end cannot work."""
    from huggingface_hub import constants, get_token

    if repo_id.count("/") != 1:
        raise HubError(f"--push-to-hub {repo_id}: give a repo id of the form owner/name")
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise HubError("--push-to-hub needs the network, but HF_HUB_OFFLINE is set; unset it or push later with "
                       "python -m irvis push --weights FOLDER --repo-id " + repo_id)
    if get_token() is None:
        raise HubError("--push-to-hub needs a Hugging Face token: run `hf auth login` or set HF_TOKEN")


def push_or_report(folder: str | os.PathLike, repo_id: str, private: bool = False) -> bool:
    """push_folder after a long job: a failure is reported on stderr, with the command that retries it, and
    the local folder stays usable. Returns whether the push worked."""
    print(f"pushing to {repo_id}: {', '.join(upload_plan(folder))}")
    try:
        print(push_folder(folder, repo_id, private=private))
        return True
    except Exception as e:  # network, auth, permissions: the trained generator must not be lost over it
        print(f"error: the push to {repo_id} failed ({type(e).__name__}: {e}); the generator is safe in {folder}; "
              f"retry with: python -m irvis push --weights {folder} --repo-id {repo_id}", file=sys.stderr)
        return False
