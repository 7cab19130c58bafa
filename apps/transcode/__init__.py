"""The transcode app: a video transcoded by many providers, one segment each.

CreateTask cuts the input at keyframes (no re-encoding), each subtask
encodes one segment with ffmpeg, Verify checks each segment against the
source (ffprobe, and PSNR of sampled frames), and the verified segments are
joined without re-encoding into the task's output.
"""

import json
from pathlib import Path

# The app definition is the one source of the image a task asks for.
DEFINITION = json.loads((Path(__file__).parent / "task-api-config.json").read_text())
IMAGE = DEFINITION["requestor_prereq"]["image"]
TAG = DEFINITION["requestor_prereq"]["tag"]
