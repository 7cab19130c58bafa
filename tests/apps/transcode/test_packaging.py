"""The app definition and the image: the same command line the tests run."""

import json
import re
from pathlib import Path

from apps import transcode
from golem_task_api.apputils.app_definition import build_app_definition, load_app_from_json_file

APP_DIR = Path(transcode.__file__).parent
FIELDS = [
    "name", "requestor_env", "requestor_prereq", "max_benchmark_score", "version",
    "description", "author", "license", "market_strategy",
]  # fmt: skip


def test_the_app_definition_builds(tmp_path: Path) -> None:
    config = APP_DIR / "task-api-config.json"
    assert list(json.loads(config.read_text())) == FIELDS
    path = build_app_definition(config, tmp_path)
    definition = load_app_from_json_file(path)
    assert definition.requestor_env == "docker_cpu"
    assert definition.requestor_prereq == {"image": transcode.IMAGE, "tag": transcode.TAG}
    assert path.name == f"golem-task-api_transcode_{definition.version}_{definition.id}.json"


def test_the_image_runs_the_tested_command_line() -> None:
    dockerfile = (APP_DIR / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "apps.transcode"]' in dockerfile
    assert "WORKDIR /golem/work" in dockerfile
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert "apt-get install -y --no-install-recommends ffmpeg" in dockerfile
    user = re.search(r"^USER (\d+)", dockerfile, re.MULTILINE)
    assert user is not None and int(user.group(1)) != 0
