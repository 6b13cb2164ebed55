"""PowerShell's `#< CLIXML` stderr (WinRS and SSH) turned into plain error lines.

`powershell.exe` writes its error stream to stderr as CLIXML when stdout is redirected.
psrpcore's public `deserialize_clixml` decodes it, including `_xD83D__xDE00_`-style escapes
of characters outside the BMP, which must be joined into one character, never left as lone
surrogates (those cannot be encoded as UTF-8 and would break every writer downstream).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from psrpcore.types import ClixmlStream, PSCryptoProvider, deserialize_clixml

CLIXML_PREFIX = "#< CLIXML"
#: Plain-text fallback for a body that is not XML: the first characters only.
MAX_RAW_ERROR = 2000


def decode_clixml_errors(stderr: str) -> list[str]:
    """PowerShell's `#< CLIXML` stderr -> error lines (plain stderr passes through as lines)."""
    text = stderr.strip()
    if not text:
        return []
    if not text.startswith(CLIXML_PREFIX):
        return [line for line in text.splitlines() if line.strip()]
    body = text[len(CLIXML_PREFIX) :].strip()
    try:
        # psrpcore's base provider, no session key: stderr never carries a SecureString
        records = deserialize_clixml(body, PSCryptoProvider(), preserve_streams=True)
    except (ET.ParseError, ValueError, KeyError, TypeError):
        return [body[:MAX_RAW_ERROR]]
    joined = "".join(str(value) for value, stream in records if stream is ClixmlStream.ERROR)
    return [line.rstrip("\r") for line in joined.split("\n") if line.strip()]
