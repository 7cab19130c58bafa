"""`python -m apps.transcode [--work-dir DIR] [--host HOST] requestor|provider PORT`."""

from apps.transcode.provider import TranscodeProviderHandler
from apps.transcode.requestor import TranscodeRequestorHandler
from golem_task_api.entrypoint import run_app


def main(argv: list[str] | None = None) -> None:
    run_app(
        requestor_handler=TranscodeRequestorHandler(),
        provider_handler=TranscodeProviderHandler(),
        argv=argv,
    )


if __name__ == "__main__":
    main()
