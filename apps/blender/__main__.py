"""`python -m apps.blender [--work-dir DIR] [--host HOST] requestor|provider PORT`."""

from apps.blender.provider import BlenderProviderHandler
from apps.blender.requestor import BlenderRequestorHandler
from golem_task_api.entrypoint import run_app


def main(argv: list[str] | None = None) -> None:
    run_app(
        requestor_handler=BlenderRequestorHandler(),
        provider_handler=BlenderProviderHandler(),
        argv=argv,
    )


if __name__ == "__main__":
    main()
