"""`golem-task-api apps`: the apps found (./apps, the bundled apps) and their definitions."""

import argparse
import json

from rich.console import Console
from rich.table import Table

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
    table = Table(title="apps", title_justify="left")
    for column in ("APP", "DEFINITION", "VERSION", "ENV", "IMAGE", "DESCRIPTION"):
        table.add_column(column, overflow="fold")
    for app in apps:
        definition = app.definition or {}
        prereq = definition.get("requestor_prereq") or {}
        image = f"{prereq.get('image')}:{prereq.get('tag')}" if prereq else ""
        table.add_row(
            app.key, str(definition.get("name", "(no task-api-config.json)")),
            str(definition.get("version", "")), str(definition.get("requestor_env", "")),
            image, str(definition.get("description", "")),
        )
    console.print(table)
    console.print(f"run one with: golem-task-api run APP ...  (found in "
                  f"{', '.join(str(d) for d in search_dirs())})", highlight=False)
    return EXIT_OK


__all__ = ["command"]
