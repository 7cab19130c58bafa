import sys

from golem_task_api.apputils.app_definition.cli import main

sys.exit(main())
