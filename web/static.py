"""Static files under content-hashed names (``app.3f2a9c1e.js``), cached for a year: a new
release has new names, so browsers never run an old script against new pages."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

STATIC_DIR = Path(__file__).with_name("static")
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class StaticFile:
    data: bytes
    content_type: str


class StaticFiles:
    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.by_hashed: dict[str, StaticFile] = {}
        self.hashed: dict[str, str] = {}
        for path in sorted(directory.rglob("*")):
            if not path.is_file():
                continue
            name = path.relative_to(directory).as_posix()
            data = path.read_bytes()
            stem, dot, ext = name.rpartition(".")
            tag = hashlib.sha256(data).hexdigest()[:12]
            hashed = f"{stem}.{tag}.{ext}" if dot else f"{name}.{tag}"
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind in ("application/javascript", "text/javascript"):
                kind += "; charset=utf-8"
            self.hashed[name] = hashed
            self.by_hashed[hashed] = StaticFile(data, kind)

    def url(self, name: str) -> str:
        return f"/static/{self.hashed[name]}"

    def endpoint(self, request: Request) -> Response:
        found = self.by_hashed.get(request.path_params["path"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            found.data,
            media_type=found.content_type,
            headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"},
        )
