"""The REST API's JSON parser: DRF's, with the nesting bound of `incident_platform.jsonlimits`.

Body size is DRF's own business since 3.17.2 (CVE-2026-73228): its JSON and
form parsers read `request.body`, which enforces DATA_UPLOAD_MAX_MEMORY_SIZE;
since 3.18.2 (CVE-2026-114136) it also refuses a `charset` that is not a text
encoding. What DRF leaves open is depth: `json.load` raises RecursionError on
deeply nested input, which DRF does not catch, so it was a 500.
"""

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .jsonlimits import MAX_JSON_DEPTH, depth_exceeds


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.") from exc
        if depth_exceeds(data):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return data
