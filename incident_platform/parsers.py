"""Request body parsers that honour DATA_UPLOAD_MAX_MEMORY_SIZE.

Django enforces the limit when `request.body` or `request.POST` is read, but
DRF's JSON and form parsers read the request stream directly, so without
this a body of any size would be read into memory and parsed. These read at
most one byte more than the limit and refuse the rest with Django's own
`RequestDataTooBig`, which `incidents.apis.exception_handler` turns into a
413 with a JSON body.
"""

import io
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers


def _bounded(stream: IO[bytes]) -> IO[bytes]:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream
    content = stream.read(limit + 1)
    if len(content) > limit:
        raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
    return io.BytesIO(content)


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return super().parse(_bounded(stream), media_type, parser_context)


class FormParser(parsers.FormParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return super().parse(_bounded(stream), media_type, parser_context)
