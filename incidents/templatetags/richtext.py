"""`rich_text`: incident text with safe links and @mentions (incidents.richtext)."""

from django import template
from django.utils.safestring import SafeString

from incidents import richtext

register = template.Library()


@register.filter
def rich_text(text: str) -> SafeString:
    return richtext.render(str(text or ""), line_breaks=True)
