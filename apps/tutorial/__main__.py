"""`python -m apps.tutorial [--work-dir DIR] [--host HOST] requestor|provider PORT`."""

from apps.tutorial.provider import TutorialProviderHandler
from apps.tutorial.requestor import TutorialRequestorHandler
from golem_task_api.entrypoint import run_app


def main(argv: list[str] | None = None) -> None:
    run_app(
        requestor_handler=TutorialRequestorHandler(),
        provider_handler=TutorialProviderHandler(),
        argv=argv,
    )


if __name__ == "__main__":
    main()
