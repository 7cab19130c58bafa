"""The Blender app: render a scene's frames with Cycles across providers.

Frames are split among subtasks, or a frame into tiles when there are fewer
frames than subtasks; every result is checked by re-rendering a random crop
of it on the requestor's side. See README.md.
"""

import json
from pathlib import Path

# The app definition is the one source of the image a task asks for.
DEFINITION = json.loads((Path(__file__).parent / "task-api-config.json").read_text())
IMAGE = DEFINITION["requestor_prereq"]["image"]
TAG = DEFINITION["requestor_prereq"]["tag"]
