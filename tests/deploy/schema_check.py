"""A small JSON Schema (2020-12) validator for the keywords monitor/schema.py emits, so the tests
need no jsonschema dependency. An unknown keyword is an error, never silently ignored."""

import math
import re
from typing import Any

_ANNOTATIONS = {"$schema", "$defs", "title", "description", "default", "examples", "format", "writeOnly",
                "then"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class SchemaValidator:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def errors(self, value: Any, schema: dict[str, Any] | None = None, path: str = "") -> list[str]:
        schema = self.root if schema is None else schema
        found: list[str] = []
        for keyword, argument in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            check = getattr(self, "_" + keyword.lstrip("$"), None)
            if check is None:
                raise ValueError(f"the test validator does not know the keyword {keyword!r}")
            found += check(value, argument, schema, path or "(root)")
        return found

    def _ref(self, value: Any, ref: str, _schema: dict[str, Any], path: str) -> list[str]:
        assert ref.startswith("#/$defs/"), ref
        return self.errors(value, self.root["$defs"][ref.removeprefix("#/$defs/")], path)

    def _type(self, value: Any, expected: str | list[str], _schema: dict[str, Any], path: str) -> list[str]:
        names = [expected] if isinstance(expected, str) else expected
        return [] if any(_TYPES[name](value) for name in names) else [f"{path}: expected {expected}"]

    def _properties(self, value: Any, properties: dict[str, Any], _schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        return [e for k, sub in properties.items() if k in value for e in self.errors(value[k], sub, f"{path}.{k}")]

    def _additionalProperties(self, value: Any, extra: Any, schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        others = [key for key in value if key not in schema.get("properties", {})]
        if extra is False:
            return [f"{path}.{key}: unknown key" for key in others]
        if extra is True:
            return []
        return [e for key in others for e in self.errors(value[key], extra, f"{path}.{key}")]

    def _required(self, value: Any, required: list[str], _schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        return [f"{path}.{key}: required" for key in required if key not in value]

    def _propertyNames(self, value: Any, names: dict[str, Any], _schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        return [e for key in value for e in self.errors(key, names, f"{path}[{key!r}]")]

    def _items(self, value: Any, items: dict[str, Any], _schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, list):
            return []
        return [e for i, item in enumerate(value) for e in self.errors(item, items, f"{path}[{i}]")]

    def _anyOf(self, value: Any, options: list[dict[str, Any]], _schema: dict[str, Any], path: str) -> list[str]:
        results = [self.errors(value, option, path) for option in options]
        return [] if any(not r for r in results) else [f"{path}: matches no alternative: {results}"]

    def _allOf(self, value: Any, options: list[dict[str, Any]], _schema: dict[str, Any], path: str) -> list[str]:
        return [error for option in options for error in self.errors(value, option, path)]

    def _if(self, value: Any, condition: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
        return self.errors(value, schema.get("then", {}), path) if not self.errors(value, condition, path) else []

    def _oneOf(self, value: Any, options: list[dict[str, Any]], _schema: dict[str, Any], path: str) -> list[str]:
        results = [self.errors(value, option, path) for option in options]
        matched = sum(not r for r in results)
        if matched == 1:
            return []
        if matched == 0:
            return [f"{path}: matches no alternative: {min(results, key=len)}"]
        return [f"{path}: matches {matched} alternatives, expected one"]

    def _enum(self, value: Any, allowed: list[Any], _schema: dict[str, Any], path: str) -> list[str]:
        return [] if value in allowed else [f"{path}: {value!r} not one of {allowed}"]

    def _const(self, value: Any, expected: Any, _schema: dict[str, Any], path: str) -> list[str]:
        return [] if value == expected else [f"{path}: expected {expected!r}"]

    def _pattern(self, value: Any, pattern: str, _schema: dict[str, Any], path: str) -> list[str]:
        ok = not isinstance(value, str) or re.search(pattern, value)
        return [] if ok else [f"{path}: {value!r} does not match {pattern}"]

    def _minLength(self, value: Any, least: int, _schema: dict[str, Any], path: str) -> list[str]:
        return [f"{path}: shorter than {least}"] if isinstance(value, str) and len(value) < least else []

    def _minItems(self, value: Any, least: int, _schema: dict[str, Any], path: str) -> list[str]:
        return [f"{path}: fewer than {least} items"] if isinstance(value, list) and len(value) < least else []

    def _minimum(self, value: Any, least: float, _schema: dict[str, Any], path: str) -> list[str]:
        return [f"{path}: below {least}"] if _TYPES["number"](value) and value < least else []

    def _maximum(self, value: Any, most: float, _schema: dict[str, Any], path: str) -> list[str]:
        return [f"{path}: above {most}"] if _TYPES["number"](value) and value > most else []

    def _exclusiveMinimum(self, value: Any, bound: float, _schema: dict[str, Any], path: str) -> list[str]:
        return [f"{path}: not above {bound}"] if _TYPES["number"](value) and value <= bound else []
