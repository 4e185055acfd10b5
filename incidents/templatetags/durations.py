"""`{{ value|duration }}`: a timedelta (or seconds) as people say it ("1 h 5 min")."""

from datetime import timedelta

from django import template

from incidents.metrics import format_duration

register = template.Library()


@register.filter
def duration(value: timedelta | float | None) -> str:
    return format_duration(value)
