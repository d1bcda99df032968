"""A local stand-in for the HuggingFace hub: serves one model folder as a hub repository.

Only what ``huggingface_hub.snapshot_download`` asks: the revision's file list, then each
file (HEAD for its metadata, GET for its bytes).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMMIT = "0" * 39 + "1"


class LocalHub:
    """``repo`` served from ``folder`` at ``self.endpoint`` (set ``HF_ENDPOINT`` to it)."""

    def __init__(self, repo: str, folder: Path) -> None:
        self.repo, self.folder = repo, folder
        self.files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        self.downloads: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = self.path.split("?")[0]
                if path.startswith(f"/api/models/{hub.repo}/revision/"):
                    data = json.dumps(
                        {"id": hub.repo, "sha": COMMIT,
                         "siblings": [{"rfilename": f} for f in hub.files]}
                    ).encode()  # fmt: skip
                    return self._send(data, "application/json", body)
                if path.startswith(f"/api/models/{hub.repo}/tree/"):
                    entries = [
                        {"type": "file", "path": f, "size": (hub.folder / f).stat().st_size,
                         "oid": hashlib.sha1((hub.folder / f).read_bytes()).hexdigest()}
                        for f in hub.files
                    ]  # fmt: skip
                    return self._send(json.dumps(entries).encode(), "application/json", body)
                prefix = f"/{hub.repo}/resolve/"
                if path.startswith(prefix):
                    name = path[len(prefix) :].split("/", 1)[1]
                    file = hub.folder / name
                    if name in hub.files:
                        if body:
                            hub.downloads.append(name)
                        return self._send(file.read_bytes(), "application/octet-stream", body)
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()

            def _send(self, data: bytes, kind: str, body: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
