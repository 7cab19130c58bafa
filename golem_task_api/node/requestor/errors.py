"""Why a task ended without its result."""


class TaskError(Exception):
    """The task cannot go on; the message is for the person who ran it.

    `user_error`: the task's own input is at fault (e.g. params the app
    refuses), not the node or the app.
    """

    def __init__(self, message: str, *, user_error: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.user_error = user_error


__all__ = ["TaskError"]
