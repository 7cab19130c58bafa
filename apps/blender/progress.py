"""A render's progress, from Blender's output to the progress file.

Blender prints one ordered stream: its own status lines
(`Fra:12 Mem:... | Sample 40/128`, with `Rendered 2/4 Tiles, ` before the
sample count when Cycles renders in tiles) and the markers of our job
script (`@golem-blender {"event": "frame", "frame": 12, "index": 1, ...}`
before each frame, `"saved"` after it). `RenderProgress` reads that stream
line by line and appends one JSON line per change to the computation's
GOLEM_PROGRESS_FILE:

    {"done": 40, "total": 128, "unit": "Samples", "message": "frame 12, tile 2 of 4",
     "step": 1, "step_count": 3}

`step`/`step_count` are the frame within the subtask, `done`/`total` the
samples of that frame. Why this way: Blender's Python API has no sample
counter (render handlers get no stats; the `render_stats` handler is passed
None), so samples exist only in the status lines; which frame is being
rendered comes from our own markers, never from parsing Blender's text, so
a Blender release that words its status differently costs sample-level
detail, not frame progress; and one reader of one ordered stream is the only
writer of the file, so lines never interleave or go backwards. Nothing here
raises on odd input: a line it does not understand is skipped.
"""

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MARKER = "@golem-blender "
_SAMPLE = re.compile(r"\|\s*(?:Rendered (\d+)/(\d+) Tiles,\s*)?Sample (\d+)/(\d+)\s*$")


class RenderProgress:
    """Feeds a render's progress file from Blender's output lines."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        frames: list[int],
        samples: int,
        tile: tuple[int, int] | None = None,
    ) -> None:
        self._path = Path(path) if path else None
        self._frames = frames
        self._samples = float(samples)
        self._tile = tile
        self._step = 0
        self._done = 0.0
        self._message = "loading the scene"
        self._last: str | None = None
        self.saved: list[int] = []
        self._write()

    def feed(self, line: str) -> None:
        """One line of Blender's output (stdout and stderr, in order)."""
        try:
            # Only at the start of a line (the job script prints a newline
            # first): a status line that names an object cannot pose as one.
            if line.startswith(MARKER):
                self._on_marker(json.loads(line[len(MARKER):]))
            else:
                self._on_status(line)
        except Exception:  # progress must never break a render
            logger.debug("progress: skipped %r", line, exc_info=True)

    def _on_marker(self, event: dict[str, Any]) -> None:
        index = event.get("index")
        if not isinstance(index, int) or not 0 <= index < len(self._frames):
            return
        if event.get("event") == "frame":
            self._step, self._done = index, 0.0
            self._message = self._describe(event.get("frame"))
        elif event.get("event") == "saved":
            self._step, self._done = index, self._samples
            self.saved.append(self._frames[index])
        self._write()

    def _on_status(self, line: str) -> None:
        match = _SAMPLE.search(line)
        if match is None:
            return
        tiles_done, tiles, sample, samples = (
            int(g) if g is not None else None for g in match.groups()
        )
        assert sample is not None and samples
        fraction = sample / samples
        if tiles:
            fraction = ((tiles_done or 0) + fraction) / tiles
        # Never backwards within a frame (tile boundaries, repeated lines).
        self._done = max(self._done, min(1.0, fraction) * self._samples)
        self._write()

    def _describe(self, frame: object) -> str:
        text = f"frame {frame}"
        if self._tile is not None:
            text += f", tile {self._tile[0] + 1} of {self._tile[1]}"
        return text

    def _write(self) -> None:
        line = json.dumps({
            "done": round(self._done, 3),
            "total": self._samples,
            "unit": "Samples",
            "message": self._message,
            "step": self._step,
            "step_count": len(self._frames),
        })
        if line == self._last or self._path is None:
            return
        self._last = line
        try:
            # One write of a short line with O_APPEND: never torn, never mixed.
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:
            logger.warning("progress: cannot write %s: %s", self._path, exc)
            self._path = None
