"""The JSON Schema of monitor.toml, for editor completion and validation (Taplo / Even Better
TOML: `#:schema ./monitor.schema.json` on the file's first line).

Built from the same models the loader validates with: `Settings` for the envelope, and each
registered check and sink type's `Config` for `[checks.NAME]` and `[sinks.NAME]`, chosen by
their `type` key with one `if`/`then` per type: a validator applies only the matching type's
schema, so a typo inside `[checks.api]` is one precise error (a `oneOf` would report every
type's mismatch). Two of our field types need their own words:
durations accept a number of seconds or a string such as "30s", and `*_env` secrets are the
name of an environment variable, never the secret itself.
"""

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from monitor import registry
from monitor.config import _NAME, Settings
from monitor.durations import _DURATION, format_duration, parse_duration
from monitor.secrets import read_env_secret, read_store_secret

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF_TEMPLATE = "#/$defs/{model}"
_DURATION_STRING = {
    "type": "string",
    "pattern": _DURATION.pattern,
    "examples": ["500ms", "30s", "15m", "1h", "1d"],
}
_ENV_NAME = {"type": "string", "minLength": 1, "pattern": r"^\S+$"}
_SECTIONS = {"checks": registry.CHECK_GROUP, "sinks": registry.SINK_GROUP}


class _MonitorSchemaGenerator(GenerateJsonSchema):
    """pydantic's generator, with our durations and environment-variable secrets spelled out."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        function = schema["function"]["function"]
        if function is parse_duration:
            seconds = self.generate_inner(schema["schema"])
            return {"anyOf": [seconds, dict(_DURATION_STRING)]}
        if function in (read_env_secret, read_store_secret):
            return dict(_ENV_NAME)
        return super().function_before_schema(schema)

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        inner = schema["schema"]
        default = generated.get("default")
        if _is_duration(inner) and isinstance(default, int | float) and not isinstance(default, bool):
            generated["default"] = _duration_text(float(default))
        return generated


def config_json_schema() -> dict[str, Any]:
    """The schema of monitor.toml: the envelope plus every registered check and sink type."""
    plugins = {section: _plugin_configs(group) for section, group in _SECTIONS.items()}
    models: list[type[BaseModel]] = [Settings, *{m for configs in plugins.values() for m in configs.values()}]
    refs, combined = _generate(models)
    definitions: dict[str, Any] = combined.get("$defs", {})
    root = definitions.pop(_ref_name(refs[Settings]))
    pristine = copy.deepcopy(definitions)
    for section, configs in plugins.items():
        variants = {name: _variant(definitions, pristine, refs[model], name) for name, model in configs.items()}
        root["properties"][section] = _plugin_section(section, variants, definitions)
    return {
        **root,
        "$schema": SCHEMA_DIALECT,
        "title": "health-monitor configuration (monitor.toml)",
        "$defs": definitions,
    }


def _generate(models: list[type[BaseModel]]) -> tuple[dict[type[BaseModel], str], dict[str, Any]]:
    mode: JsonSchemaMode = "validation"
    keys, combined = models_json_schema(
        [(model, mode) for model in models], ref_template=_REF_TEMPLATE, schema_generator=_MonitorSchemaGenerator
    )
    refs = {model: keys[(model, mode)]["$ref"] for model in models}
    return refs, combined


def _plugin_configs(group: str) -> dict[str, type[BaseModel]]:
    """Type name to its Config model, for each type that imports (a broken plugin is left out)."""
    configs: dict[str, type[BaseModel]] = {}
    for name in sorted(registry.available(group)):
        try:
            configs[name] = registry.load(group, name).Config
        except Exception:  # noqa: BLE001 - one broken third-party plugin must not hide the others
            continue
    return configs


def _variant(definitions: dict[str, Any], pristine: dict[str, Any], ref: str, type_name: str) -> str:
    """The type's model schema with a `type` key that admits only `type_name`; its $defs key.
    A model serving several type names gets one copy per name."""
    model = _ref_name(ref)
    schema = copy.deepcopy(pristine[model])
    schema["properties"]["type"] = {"const": type_name, "title": "Type"}
    schema["required"] = sorted({*schema.get("required", []), "type"})
    schema["title"] = f'{type_name} ({schema.get("title", model)})'
    taken = definitions[model]["properties"]["type"].get("const") is not None
    key = f"{model}.{type_name}" if taken else model
    definitions[key] = schema
    return key


def _plugin_section(section: str, variants: dict[str, str], definitions: dict[str, Any]) -> dict[str, Any]:
    item = "check" if section == "checks" else "sink"
    entry: dict[str, Any] = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": sorted(variants), "description": f"The {item} type."}},
        "allOf": [
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"$ref": _REF_TEMPLATE.format(model=key)},
            }
            for name, key in sorted(variants.items())
        ],
    }
    definitions[item] = entry
    return {
        "type": "object",
        "title": section.capitalize(),
        "description": f"[{section}.NAME] tables; NAME holds letters, digits, '_', '.' and '-'.",
        "propertyNames": {"pattern": _NAME.pattern},
        "additionalProperties": {"$ref": _REF_TEMPLATE.format(model=item)},
    }


def _is_duration(schema: core_schema.CoreSchema) -> bool:
    while schema["type"] == "nullable":
        schema = schema["schema"]
    if schema["type"] != "function-before":
        return False
    return schema["function"]["function"] is parse_duration


def _duration_text(seconds: float) -> str | float:
    """A default in the form users write ("1m"), when that form is exact."""
    text = format_duration(seconds)
    return text if parse_duration(text) == seconds else seconds


def _ref_name(ref: str) -> str:
    return ref.removeprefix("#/$defs/")
