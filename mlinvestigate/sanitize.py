"""Make untrusted log text safe to print in a terminal.

Log fields are written by whoever sent the request, so a string can carry escape sequences
that recolour the screen, set the window title, plant an OSC 8 hyperlink, move the cursor to
overwrite earlier lines, or bidi controls that reorder what is displayed ("Trojan Source").
`clean` removes all of that before anything reaches a terminal.

What `clean` does, in order:

* whole escape sequences are removed: CSI (``ESC [`` or U+009B … final byte, also when cut
  short), string sequences OSC/DCS/SOS/PM/APC (``ESC ]``, ``ESC P``, ``ESC X``, ``ESC ^``,
  ``ESC _`` or their C1 forms) up to a BEL or ST terminator, and two-byte/nF sequences such
  as ``ESC ( B`` or ``ESC 7``. A string sequence without a terminator loses only its
  introducer: its body stays visible because a log line is evidence and hiding the rest of it
  would be worse than showing some harmless text.
* line breaks (``\\n``, ``\\r\\n``, ``\\r``, VT, FF, NEL, U+2028, U+2029) become one ``↵`` so a
  multi-line message stays on one row and the reader can still see where the breaks were;
  a tab becomes one space.
* every other C0 control, DEL and C1 control (U+0080–U+009F) is removed.
* bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and the invisible
  bidi marks (U+200E, U+200F, U+061C) are removed.
* lone surrogates (which ``json.loads`` produces from ``"\\ud800"``) become U+FFFD, because
  writing them to a UTF-8 stream raises ``UnicodeEncodeError`` in the middle of a table.

Text for which ``str.isprintable()`` is true is returned unchanged, and ``clean`` is
idempotent.
"""

from __future__ import annotations

import re

LINE_BREAK_MARKER = "↵"
"""Shown where the original text had a line break."""

# The pattern starts with a character class so the regex engine can skip quickly to the next
# ESC or C1 introducer; the lookbehinds then pick the sequence type from the character matched.
# A lone ESC or introducer matches too (the optional group is empty) and is removed with it.
_ESCAPE_SEQUENCE = re.compile(
    r"""
    [\x1b\x90\x98\x9b\x9d\x9e\x9f]
    (?:
        (?<=\x1b) (?:
              \[ [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?
                # CSI: parameters, intermediates, final byte (optional: a truncated one goes too)
            | [\]PX^_] [^\x07\x1b\x9c]* (?:\x07|\x1b\\|\x9c)
                # OSC / DCS / SOS / PM / APC and their body, ended by BEL or ST (ESC \ or 0x9c)
            | [\x20-\x2f]* [\x30-\x7e]
                # any other sequence: ESC 7, ESC c, ESC ( B, an unterminated ESC ] ...
        )
        | (?<=\x9b) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?
            # C1 CSI
        | (?<=[\x90\x98\x9d\x9e\x9f]) [^\x07\x1b\x9c]* (?:\x07|\x1b\\|\x9c)
            # C1 DCS / SOS / OSC / PM / APC
    )?
    """,
    re.VERBOSE,
)

_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"

# Every character clean() changes. A plain character class (no alternation) lets the regex
# engine scan quickly, so searching it is also the check for "nothing to do".
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + _BIDI_CONTROLS + "\u2028\u2029\ud800-\udfff]")
_C1_INTRODUCER = re.compile("[\x90\x98\x9b\x9d\x9e\x9f]")


def _replacement(unsafe: re.Match[str]) -> str:
    char = unsafe.group()
    if char == "\t":
        return " "
    if char in _LINE_BREAKS:
        return LINE_BREAK_MARKER
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"
    return ""  # other C0, DEL, C1 and bidi controls


def clean(text: str) -> str:
    """Return `text` with terminal control sequences, controls and bidi overrides removed."""
    # Fast path: most fields (ids, versions, statuses) are plain printable ASCII, and both
    # checks run in C without allocating.
    if text.isascii() and text.isprintable():
        return text
    if _UNSAFE.search(text) is None:
        return text
    if "\x1b" in text or _C1_INTRODUCER.search(text):
        text = _ESCAPE_SEQUENCE.sub("", text)
    if "\r" in text:
        # One marker for a Windows line ending, not two.
        text = text.replace("\r\n", "\n")
    # A callback per match is cheaper than str.translate with a dict, which does a Python-level
    # lookup for every character of (often long, often non-ASCII) text that stays.
    return _UNSAFE.sub(_replacement, text)
