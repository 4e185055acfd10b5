"""Input serializers that refuse fields they do not know, and JSON values of the wrong type.

A typo such as `sevrity` should be a clear 400, not a silent no-op that the
client takes for success. And a JSON body is typed: DRF would take `0` for a
string field or `"3"` for an integer, which a client generated from the
OpenAPI schema never sends and a hand-written one should hear about. Form
data (the browsable API's forms) is all strings, so only JSON is held to this.
"""

from typing import Any

from django.http import QueryDict
from rest_framework import serializers


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_type_error(field: serializers.Field[Any, Any, Any, Any], value: Any) -> str | None:
    """Why `value` is not of the JSON type `field` takes, or None (null is the field's own business)."""
    if value is None:
        return None
    if isinstance(field, serializers.ManyRelatedField):
        # DRF would iterate any iterable: an object's keys, a string's characters.
        return None if isinstance(value, list) and all(_is_int(item) for item in value) else "A list of ids (integers)."
    if isinstance(field, serializers.PrimaryKeyRelatedField | serializers.IntegerField):
        return None if _is_int(value) else "A valid integer is required."
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be a valid boolean."
    if isinstance(field, serializers.CharField | serializers.ChoiceField):
        return None if isinstance(value, str) else "Not a valid string."
    return None


class StrictSerializer(serializers.Serializer[Any]):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({field: ["Unknown field."] for field in sorted(unknown)})
            if not isinstance(data, QueryDict):
                wrong = {
                    name: [problem]
                    for name, field in self.fields.items()
                    if name in data and (problem := json_type_error(field, data[name]))
                }
                if wrong:
                    raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)
