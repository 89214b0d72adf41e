"""Text from outside (a record, a file name, an error quoting either) made safe to show.

Here, below every layer that shows text: the CLI's output, and the processor's health
file that the monitor quotes in alerts (``util.health``), escape alike.
"""

from __future__ import annotations

import re

# What a terminal may act on instead of showing: C0 controls but the tab and the line break
# (an escape starts a sequence that sets a window title, the clipboard, moves the cursor or
# clears the screen; a carriage return prints over the line), DEL and the C1 controls (U+009B
# is a CSI on some terminals), and the bidirectional overrides, which reorder what follows.
_UNSHOWN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(text: str) -> str:
    r"""``text`` as a terminal should show it when it comes from outside (a record, a user
    agent, a file name): each control character written as its escape, ``\x1b`` for an
    escape, so that it is seen instead of acted on.

    >>> shown("a\x1b]0;title\x07b\u202ec\td")
    'a\\x1b]0;title\\x07b\\u202ec\td'
    """
    return _UNSHOWN.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
