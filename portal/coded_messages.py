"""Messages kept by code with their values: logs and the command line read them in English, pages translate
them (the English text is the msgid). Each area has its own catalogue; no Flask import."""
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class CodedMessage:
    """One message of `catalogue` with its values; str() is the English text."""

    code: str
    params: dict = field(default_factory=dict)
    catalogue: ClassVar[dict] = {}

    def __str__(self):
        return self.catalogue[self.code] % self.params

    def as_dict(self):
        return {"code": self.code, "params": self.params, "text": str(self)}


class CodedError(Exception):
    """An error whose `message` is a CodedMessage of `message_class`."""

    message_class = CodedMessage

    def __init__(self, code, **params):
        self.message = self.message_class(code, params)
        super().__init__(str(self.message))
