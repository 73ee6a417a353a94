"""The one exception type for bad input: the CLI prints it without a traceback."""


class AffectflowError(Exception):
    """Bad input or a failed precondition; the message names the file and the problem."""


def fail(path, problem: str) -> "AffectflowError":
    """Build the error for `path`: ``raise fail(path, "has no frames")``."""
    return AffectflowError(f"{path}: {problem}")
