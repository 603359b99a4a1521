"""The page's files from web/, and a local three.js in place of the CDN when it is installed.

web/index.html imports three.js from https://cdn.jsdelivr.net/npm/three@<version>/ (version from
web/package.json). When scripts/setup has installed web/node_modules/three/, index.html is
served with that prefix pointing at /vendor/three/ instead, so the page works offline.

Every response carries the security headers of a local app; the page's Content-Security-Policy
allows scripts from this server, the pinned three.js on the CDN and the page's own inline import map
(by its hash), and nothing else.
"""
from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import mimetypes
import re
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response

VENDOR = "/vendor/three/"
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html", ".css": "text/css",
         ".json": "application/json", ".wasm": "application/wasm", ".svg": "image/svg+xml"}


ALLOWED_METHODS = ("GET", "HEAD")
NOTHING_ALLOWED = "default-src 'none'; frame-ancestors 'none'"  # the CSP of everything but the page
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def response(status: HTTPStatus, body: bytes, content_type: str, csp: str = NOTHING_ALLOWED,
             extra: tuple[tuple[str, str], ...] = ()) -> Response:
    # no-cache: the page and a re-installed three.js must never be served stale (the files are small and local).
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       ("Content-Length", str(len(body))), ("Content-Type", content_type),
                       ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                       ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
                       ("Cross-Origin-Resource-Policy", "same-origin"), ("Content-Security-Policy", csp), *extra])
    return Response(status.value, status.phrase, headers, body)


def without_body(r: Response) -> Response:
    """The answer to HEAD: GET's status and headers (Content-Length included), no body."""
    return Response(r.status_code, r.reason_phrase, r.headers, b"")


def method_not_allowed(method: str) -> Response:
    r = text_response(HTTPStatus.METHOD_NOT_ALLOWED, f"{method[:20]} is not served here; only GET and HEAD")
    r.headers["Allow"] = ", ".join(ALLOWED_METHODS)
    return r


def page_csp(html: str, three_prefix: str) -> str:
    """The page's policy: its files, three.js from three_prefix, its inline scripts (the import map) by hash."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
                      for m in INLINE_SCRIPT.findall(html))
    return ("default-src 'none'; "
            f"script-src 'self' {three_prefix} {hashes}; "
            "style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
            "connect-src 'self'; "  # the websocket to this server ('self' covers ws: on the same host)
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


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
        if relative.endswith(".html"):
            return self._page(relative)
        return self._file(self.root, relative)

    def _page(self, relative: str) -> Response:
        file = resolve(self.root, relative)
        if file is None:
            return text_response(HTTPStatus.NOT_FOUND, "not found")
        html = file.read_text(encoding="utf-8")
        if self.local_three:
            html = html.replace(self.cdn_prefix, VENDOR)
        return response(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8", page_csp(html, self.cdn_prefix))

    def _file(self, base: Path, relative: str) -> Response:
        file = resolve(base, relative)
        if file is None:
            return text_response(HTTPStatus.NOT_FOUND, "not found")
        return response(HTTPStatus.OK, file.read_bytes(), content_type(file))
