"""The API's JSON parser: orjson, with a depth limit and no NUL characters.

Python's json module recurses once per nesting level, so a body of 100,000 ``[`` used to
end in a RecursionError (a 500) on every JSON endpoint, the anonymous sign-in included;
and PostgreSQL refuses NUL in text, so a ``\\u0000`` in any string failed at the insert.
Both are refused here, at the edge, with a 400 naming the problem.

Also the first upload handler (``OversizeUploadHandler``): a multipart body over the
import limit is never read.
"""

from __future__ import annotations

import orjson
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

#: No request body of this API nests deeper (the deepest, a context report, is 3).
MAX_DEPTH = 32
#: Room for a multipart envelope and the small fields around an uploaded file.
ENVELOPE_BYTES = 64 * 1024


def check(value, max_depth: int = MAX_DEPTH) -> None:
    """Raise ParseError when ``value`` nests deeper than ``max_depth`` or holds a NUL
    in a string or a key. Iterative: a deep value must not exhaust the stack here either."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ParseError("JSON strings must not contain NUL (\\u0000) characters")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise ParseError(f"JSON nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


class SafeJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc) or "recursion" in str(exc):
                raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
            raise ParseError(f"malformed JSON: {exc}") from None
        check(value)
        return value


class OversizeUploadHandler(FileUploadHandler):
    """First of Django's upload handlers: a multipart body whose ``Content-Length`` is
    over ``IMPORT_MAX_BYTES`` (plus room for the envelope) is not read at all; it parses
    as empty, and the upload view answers 413 from the same header. Without it, a
    session-signed request would be parsed whole (to temporary files) by the CSRF check
    before the view could look at its size."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > settings.IMPORT_MAX_BYTES + ENVELOPE_BYTES:
            return QueryDict(), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data, start):
        return raw_data  # pass every chunk on to the next handler

    def file_complete(self, file_size):
        return None
