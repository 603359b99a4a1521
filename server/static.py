"""The page's files from web/, and a local three.js in place of the CDN when it is installed.

web/index.html imports three.js from https://cdn.jsdelivr.net/npm/three@<version>/ (version from
web/package.json). When scripts/setup has installed web/node_modules/three/, index.html is
served with that prefix pointing at /vendor/three/ instead, so the page works offline.
"""
from __future__ import annotations

import email.utils
import json
import mimetypes
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response

VENDOR = "/vendor/three/"
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html", ".css": "text/css",
         ".json": "application/json", ".wasm": "application/wasm", ".svg": "image/svg+xml"}


def response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    # no-cache: the page and a re-installed three.js must never be served stale (the files are small and local).
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       ("Content-Length", str(len(body))), ("Content-Type", content_type),
                       ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")])
    return Response(status.value, status.phrase, headers, body)


def text_response(status: HTTPStatus, text: str) -> Response:
    return response(status, text.encode(), "text/plain; charset=utf-8")


def json_response(data: dict) -> Response:
    return response(HTTPStatus.OK, json.dumps(data).encode(), "application/json")


def content_type(path: Path) -> str:
    t = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return t + "; charset=utf-8" if t.startswith("text/") or t == "application/json" else t


def resolve(base: Path, relative: str) -> Path | None:
    """base/relative if it is a file inside base (no '..', no symlink escapes), else None."""
    base = base.resolve()
    try:
        path = (base / relative).resolve()
    except (OSError, ValueError):
        return None
    return path if path.is_relative_to(base) and path.is_file() else None


class StaticFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.three = root / "node_modules" / "three"
        self.cdn_prefix = f"https://cdn.jsdelivr.net/npm/three@{self._three_version()}/"

    def _three_version(self) -> str:
        try:
            return json.loads((self.root / "package.json").read_text())["dependencies"]["three"]
        except (OSError, KeyError, json.JSONDecodeError):
            return "unknown"

    @property
    def local_three(self) -> bool:
        return (self.three / "build").is_dir()

    def get(self, url_path: str) -> Response:
        """The response to a GET of url_path (blocking file reads: call it from a thread)."""
        path = unquote(urlsplit(url_path).path)
        if path.startswith(VENDOR):
            if not self.local_three:
                return text_response(HTTPStatus.NOT_FOUND, "three.js is not installed locally (run scripts/setup)")
            return self._file(self.three, path[len(VENDOR):])
        relative = path.lstrip("/") or "index.html"
        if relative.endswith("/"):
            relative += "index.html"
        first = relative.split("/", 1)[0]
        if first == "node_modules" or first.startswith("."):
            return text_response(HTTPStatus.NOT_FOUND, "not found")
        if relative == "index.html" and self.local_three:
            file = resolve(self.root, relative)
            if file is None:
                return text_response(HTTPStatus.NOT_FOUND, "web/index.html not found")
            html = file.read_text(encoding="utf-8").replace(self.cdn_prefix, VENDOR)
            return response(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8")
        return self._file(self.root, relative)

    def _file(self, base: Path, relative: str) -> Response:
        file = resolve(base, relative)
        if file is None:
            return text_response(HTTPStatus.NOT_FOUND, "not found")
        return response(HTTPStatus.OK, file.read_bytes(), content_type(file))
