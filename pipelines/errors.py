"""The one error type users see: it names the problem and the fix on one line."""


class ClipLineError(ValueError):
    """A problem with the user's input or environment, reported before work starts.

    The message names the thing that is wrong; `fix` says what to do about it.
    It is a ValueError so that pydantic reports it against the config field.
    The CLI prints `error: <message> (<fix>)` and exits with status 2.
    """

    def __init__(self, message: str, fix: str = ""):
        self.message = message
        self.fix = fix
        super().__init__(f"{message} ({fix})" if fix else message)
