"""Input serializers that refuse fields they do not know.

A typo such as `sevrity` should be a clear 400, not a silent no-op that the
client takes for success.
"""

from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer[Any]):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({field: ["Unknown field."] for field in sorted(unknown)})
        return super().to_internal_value(data)
