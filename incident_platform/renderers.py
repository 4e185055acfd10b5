"""DRF's browsable API under the Content-Security-Policy.

Its pages carry an inline <style> (Pygments) and style attributes from DRF's
own templates. They get `style-src 'unsafe-inline'`, and nothing else: no
inline script runs on them either.
"""

from typing import Any

from rest_framework.renderers import BrowsableAPIRenderer


class StrictScriptBrowsableAPIRenderer(BrowsableAPIRenderer):
    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None) -> Any:
        response = (renderer_context or {}).get("response")
        if response is not None:
            response._csp_update = {"style-src": ["'unsafe-inline'"]}
        return super().render(data, accepted_media_type, renderer_context)
