"""Apps built on golem_task_api, each runnable as `python -m apps.<name>`."""
