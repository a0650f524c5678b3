"""Text shown to the user."""


def first_line(error: BaseException) -> str:
    """An error's message in one line; its type's name where the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
