import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from golem_task_api.apputils.app_definition import (
    AppDefinition,
    AppDefinitionBase,
    AppDefinitionError,
    build_app_definition,
    load_app_from_json_file,
    save_app_to_json_file,
)
from golem_task_api.apputils.app_definition.cli import main

# Published definitions of blenderapp (ids as Golem nodes listed them).
BLENDER_DESCRIPTION = "Rendering with Blender, the free and open source 3D creation suite"


def blenderapp(version: str) -> AppDefinitionBase:
    return AppDefinitionBase(
        name="golemfactoryapps/blenderapp",
        requestor_env="docker_cpu",
        requestor_prereq={"image": "golemfactoryapps/blenderapp", "tag": version},
        max_benchmark_score=10000.0,
        version=version,
        description=BLENDER_DESCRIPTION,
        author="Golem Factory GmbH",
        license="GPLv3",
        market_strategy="brass",
    )


def minimal(**changes: Any) -> AppDefinitionBase:
    fields: dict[str, Any] = {
        "name": "me/app",
        "requestor_env": "docker_cpu",
        "requestor_prereq": {"image": "me/app", "tag": "1.0"},
        "max_benchmark_score": 1.0,
    }
    return AppDefinitionBase(**{**fields, **changes})


def test_field_order() -> None:
    assert [f.name for f in dataclasses.fields(AppDefinitionBase)] == [
        "name", "requestor_env", "requestor_prereq", "max_benchmark_score", "version",
        "description", "author", "license", "market_strategy",
    ]
    assert AppDefinition is AppDefinitionBase


def test_defaults() -> None:
    defn = minimal()
    assert (defn.version, defn.description, defn.author, defn.license) == ("0.0", "", "", "")
    assert defn.market_strategy == "brass"


@pytest.mark.parametrize(
    ("version", "app_id"),
    [("0.8.0", "d31614541096ad3bd2b500aed90490a5"), ("0.7.3", "6b39331ac73484ff596447cefdfba9e5")],
)
def test_published_ids(version: str, app_id: str) -> None:
    assert blenderapp(version).id == app_id


def test_id_is_the_hash_of_the_json() -> None:
    defn = minimal(description="ünïcode")
    assert defn.to_json() == json.dumps(dataclasses.asdict(defn))
    expected = hashlib.blake2b(defn.to_json().encode(), digest_size=16).hexdigest()
    assert defn.id == expected
    assert minimal(version="1.0.1").id != defn.id


def test_id_is_stable_under_normalisation() -> None:
    canonical = minimal(max_benchmark_score=10.0)
    reordered = minimal(requestor_prereq={"tag": "1.0", "image": "me/app"}, max_benchmark_score=10)
    assert reordered == canonical
    assert reordered.id == canonical.id
    assert isinstance(reordered.max_benchmark_score, float)
    assert list(reordered.requestor_prereq) == ["image", "tag"]


def test_json_round_trip() -> None:
    defn = blenderapp("0.8.0")
    # A file with its keys in another order still means the same app.
    shuffled = json.dumps(dict(reversed(list(defn.to_dict().items()))))
    assert AppDefinitionBase.from_json(shuffled) == defn
    assert AppDefinitionBase.from_json(shuffled).id == defn.id


def test_file_name() -> None:
    assert blenderapp("0.8.0").file_name == (
        "golemfactoryapps_blenderapp_0.8.0_d31614541096ad3bd2b500aed90490a5.json"
    )


def test_save_and_load(tmp_path: Path) -> None:
    defn = blenderapp("0.8.0")
    path = tmp_path / "apps" / defn.file_name
    save_app_to_json_file(defn, path)
    assert hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest() == defn.id
    assert load_app_from_json_file(path) == defn
    assert [p.name for p in path.parent.iterdir()] == [defn.file_name]  # no temp file left
    assert path.stat().st_mode & 0o644 == 0o644


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"requestor_prereq": {"image": "me/app"}}, "exactly the keys 'image' and 'tag'"),
        ({"requestor_prereq": {"image": "a", "tag": "b", "x": "c"}}, "exactly the keys"),
        ({"requestor_prereq": {"image": "a", "tag": ""}}, "non-empty"),
        ({"requestor_prereq": {"image": "a", "tag": 1}}, "non-empty"),
        ({"requestor_prereq": "me/app:1.0"}, "exactly the keys"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"requestor_env": None}, "requestor_env must be a non-empty string"),
        ({"version": 1.0}, "version must be a non-empty string"),
        ({"author": None}, "author must be a string"),
        ({"max_benchmark_score": "10"}, "max_benchmark_score must be a positive number"),
        ({"max_benchmark_score": float("nan")}, "positive number"),
        ({"max_benchmark_score": 0}, "positive number"),
        ({"max_benchmark_score": True}, "positive number"),
        ({"market_strategy": "gold"}, "market_strategy must be one of brass, wasm"),
    ],
)
def test_validation(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(AppDefinitionError, match=message):
        minimal(**changes)


def test_validation_lists_every_problem() -> None:
    with pytest.raises(AppDefinitionError) as info:
        minimal(name="", market_strategy="gold")
    assert "name must be" in str(info.value) and "market_strategy must be" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_from_dict_errors() -> None:
    data = minimal().to_dict()
    with pytest.raises(AppDefinitionError, match="did you mean 'requestor_prereq'"):
        AppDefinitionBase.from_dict({**data, "requestor_prerequisites": {}})
    del data["max_benchmark_score"]
    with pytest.raises(AppDefinitionError, match="missing app definition fields: max_benchmark"):
        AppDefinitionBase.from_dict(data)
    with pytest.raises(AppDefinitionError, match="must be JSON"):
        AppDefinitionBase.from_json("{")
    with pytest.raises(AppDefinitionError, match="a JSON object"):
        AppDefinitionBase.from_json("[]")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(AppDefinitionError, match="cannot read"):
        load_app_from_json_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(AppDefinitionError, match=r"bad.json: missing app definition fields"):
        load_app_from_json_file(bad)


# -- building from the original task-api-config.json --

ORIGINAL_CONFIG = {"requestor_env": "docker_cpu", "max_benchmark_score": 10000.0,
                   "market_strategy": "brass"}
BLENDER_OVERRIDES: dict[str, Any] = {
    "name": "golemfactoryapps/blenderapp", "version": "0.8.0",
    "description": BLENDER_DESCRIPTION, "author": "Golem Factory GmbH", "license": "GPLv3",
    "image": "golemfactoryapps/blenderapp", "tag": "0.8.0",
}


def test_build_from_the_original_config(tmp_path: Path) -> None:
    config = tmp_path / "task-api-config.json"
    config.write_text(json.dumps(ORIGINAL_CONFIG, indent=3))
    path = build_app_definition(config, tmp_path / "dist", **BLENDER_OVERRIDES)
    assert path == tmp_path / "dist" / blenderapp("0.8.0").file_name
    assert load_app_from_json_file(path) == blenderapp("0.8.0")


def test_build_from_a_mapping_with_a_prereq(tmp_path: Path) -> None:
    config = {**ORIGINAL_CONFIG, "name": "me/app",
              "requestor_prereq": {"image": "me/app", "tag": "latest"}}
    path = build_app_definition(config, tmp_path, version="2.0", tag="2.0")
    defn = load_app_from_json_file(path)
    assert defn.requestor_prereq == {"image": "me/app", "tag": "2.0"}
    assert defn.version == "2.0"
    assert path.name == f"me_app_2.0_{defn.id}.json"


def test_build_errors(tmp_path: Path) -> None:
    with pytest.raises(AppDefinitionError, match="missing app definition fields: name"):
        build_app_definition(ORIGINAL_CONFIG, tmp_path, image="a", tag="b")
    with pytest.raises(AppDefinitionError, match="exactly the keys"):
        build_app_definition(ORIGINAL_CONFIG, tmp_path, name="me/app", image="a")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(AppDefinitionError, match="is not JSON"):
        build_app_definition(tmp_path / "broken.json", tmp_path)
    with pytest.raises(AppDefinitionError, match="cannot read config"):
        build_app_definition(tmp_path / "none.json", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json"]


def _cli_args(config: Path, out: Path) -> list[str]:
    args = [str(config), "--out", str(out)]
    for key, value in BLENDER_OVERRIDES.items():
        args += [f"--{key}", value]
    return args


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "task-api-config.json"
    config.write_text(json.dumps(ORIGINAL_CONFIG))
    assert main(_cli_args(config, tmp_path / "out")) == 0
    expected = tmp_path / "out" / blenderapp("0.8.0").file_name
    assert capsys.readouterr().out == f"{expected}\n"
    assert load_app_from_json_file(expected).id == "d31614541096ad3bd2b500aed90490a5"


def test_cli_overrides_numbers_and_strategy(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps(ORIGINAL_CONFIG))
    assert main([str(config), "--out", str(tmp_path), "--name", "a/b", "--image", "a/b",
                 "--tag", "1", "--max-benchmark-score", "5", "--market-strategy", "wasm",
                 "--requestor-env", "docker_gpu"]) == 0
    (path,) = tmp_path.glob("a_b_0.0_*.json")
    defn = load_app_from_json_file(path)
    assert (defn.max_benchmark_score, defn.market_strategy, defn.requestor_env) == (
        5.0, "wasm", "docker_gpu"
    )


def test_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps(ORIGINAL_CONFIG))
    assert main([str(config), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.startswith("error: missing app definition fields: name")
    assert not (tmp_path / "out").exists()


def test_python_dash_m(tmp_path: Path) -> None:
    config = tmp_path / "task-api-config.json"
    config.write_text(json.dumps(ORIGINAL_CONFIG))
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "golem_task_api.apputils.app_definition",
         *_cli_args(config, tmp_path / "dist")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    path = Path(done.stdout.strip())
    assert path.name == "golemfactoryapps_blenderapp_0.8.0_d31614541096ad3bd2b500aed90490a5.json"
    assert load_app_from_json_file(path) == blenderapp("0.8.0")
