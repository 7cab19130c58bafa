import sys

from golem_task_api.node.cli.main import main

sys.exit(main())
