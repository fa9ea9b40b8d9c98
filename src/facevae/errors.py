"""The one base class for problems the user can fix; the CLI prints these without a traceback.

A message that tells the user to change a setting names it as "{option}" and says which one
(`option`, the library's keyword name, and `value`, the value that fixes it); each front end
renders that in its own words: the CLI its flag (`--whole-image`), the REST API its field,
the GUI its control's label, Python the keyword (`whole_image=True`, the default rendering).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

OPTION = "{option}"  # where a message names its option
# (option, value) -> how a front end names that setting, e.g. "`--whole-image`"
OptionNamer = Callable[[str, Any], str]


def python_name(option: str, value: Any) -> str:
    """`whole_image=True`: the keyword, as Python callers write it."""
    return f"`{option}={value!r}`" if value is not None else f"`{option}`"


def cli_name(option: str, value: Any) -> str:
    """`--whole-image`, `--refine-steps 100`: the command line's flag."""
    flag = "--" + option.replace("_", "-")
    return f"`{flag}`" if value is None or value is True else f"`{flag} {value}`"


class UserError(ValueError):
    """Bad input, a missing file, an unusable model: the message names the problem and the fix.

    option / value: the setting the message's "{option}" stands for, and the value that fixes
    the problem (None: no particular value).
    """

    def __init__(self, message: str, option: str | None = None, value: Any = None) -> None:
        self.message, self.option, self.value = message, option, value
        super().__init__(self.render())

    def render(self, name: OptionNamer = python_name) -> str:
        """The message with its option named as `name` names it."""
        if self.option is None:
            return self.message
        return self.message.replace(OPTION, name(self.option, self.value))
