"""The tutorial app: find every nonce whose hash has enough leading zero bits.

The template to copy when writing an app: it uses only the public API of
golem_task_api, keeps all task state on disk, and verifies results without
trusting the provider.
"""

import json
from pathlib import Path

# The app definition is the one source of the image a task asks for.
DEFINITION = json.loads((Path(__file__).parent / "task-api-config.json").read_text())
IMAGE = DEFINITION["requestor_prereq"]["image"]
TAG = DEFINITION["requestor_prereq"]["tag"]
