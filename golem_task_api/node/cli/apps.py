"""`golem-task-api apps`: the apps found (./apps, the bundled apps) and their definitions."""

import argparse
import json

from rich.console import Console
from rich.padding import Padding

from golem_task_api.node.app_catalog import list_apps, search_dirs
from golem_task_api.node.cli.common import EXIT_OK


def command(args: argparse.Namespace) -> int:
    apps = list_apps()
    if args.json:
        print(json.dumps(
            [{"name": a.key, "module": a.module, "path": a.path, "definition": a.definition}
             for a in apps],
            indent=2,
        ))
        return EXIT_OK
    console = Console()
    if not apps:
        console.print(f"no apps found in {', '.join(str(d) for d in search_dirs())}")
        return EXIT_OK
    for app in apps:
        definition = app.definition or {}
        prereq = definition.get("requestor_prereq") or {}
        name = definition.get("name", "no task-api-config.json")
        version = definition.get("version", "")
        console.print(f"[bold]{app.key}[/bold]  {name} {version}  ({app.path})",
                      highlight=False, soft_wrap=True)
        if definition:
            console.print(
                f"    env {definition.get('requestor_env')}, image"
                f" {prereq.get('image')}:{prereq.get('tag')}, module {app.module}",
                highlight=False, soft_wrap=True,
            )
            if definition.get("description"):
                console.print(Padding(str(definition["description"]), (0, 0, 0, 4)),
                              highlight=False)
    console.print(f"run one with: golem-task-api run APP ...  (found in "
                  f"{', '.join(str(d) for d in search_dirs())})", highlight=False)
    return EXIT_OK


__all__ = ["command"]
