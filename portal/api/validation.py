"""Check a decoded JSON request against the OpenAPI document's own schemas, naming every bad field.

Only the JSON Schema the document uses is understood: type (one or a list), properties,
required, additionalProperties: false, items, min/maxItems, min/maxLength, enum, pattern,
minimum/maximum, anyOf and $ref. Messages are English, as every API error message is.
"""
from __future__ import annotations

import re
from functools import lru_cache

from portal.api.openapi import SCHEMAS

_TYPES = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


class Invalid(ValueError):
    """Values that do not fit the schema; ``fields`` maps a path (``smtp.port``, ``to[1]``) to its message."""

    def __init__(self, fields):
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))
        self.fields = fields


@lru_cache(maxsize=None)
def _pattern(text):
    return re.compile(text)


def _is(value, kind):
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(f"unknown schema type {kind}")


def _resolve(schema):
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _join(path, name):
    return f"{path}.{name}" if path else name


def _check(value, schema, path, errors):
    schema = _resolve(schema)
    if "anyOf" in schema:
        options = [_resolve(option) for option in schema["anyOf"]]
        attempts = []
        for option in options:
            found = {}
            _check(value, option, path, found)
            if not found:
                return
            attempts.append((option, found))
        # Report against the option whose type fits (else the first, non-null one).
        fitting = [found for option, found in attempts if _type_fits(value, option)]
        errors.update(fitting[0] if fitting else attempts[0][1])
        return
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, kind) for kind in kinds):
            errors[path or "body"] = "Must be " + " or ".join(_TYPES[kind] for kind in kinds) + "."
            return
    if "enum" in schema and value not in schema["enum"]:
        errors[path or "body"] = "Must be one of: " + ", ".join(str(v) for v in schema["enum"]) + "."
        return
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors[path] = f"At most {schema['maxLength']} characters."
        elif "minLength" in schema and len(value) < schema["minLength"]:
            errors[path] = f"At least {schema['minLength']} characters."
        elif "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            errors[path] = "Use a single line without line breaks or control characters."
    elif isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors[path] = f"At least {schema['minimum']}."
        elif "maximum" in schema and value > schema["maximum"]:
            errors[path] = f"At most {schema['maximum']}."
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors[path] = f"At most {schema['maxItems']} items."
            return
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors[path] = f"At least {schema['minItems']} item{'s' if schema['minItems'] > 1 else ''}."
            return
        if "items" in schema:
            for index, item in enumerate(value):
                _check(item, schema["items"], f"{path}[{index}]", errors)
    elif isinstance(value, dict):
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in properties:
                    errors[_join(path, str(name))] = "Unknown field."
        for name in schema.get("required", ()):
            if name not in value:
                errors[_join(path, name)] = "This field is required."
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], _join(path, name), errors)


def _type_fits(value, schema):
    kinds = schema.get("type")
    if kinds is None:
        return True
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return any(_is(value, kind) for kind in kinds)


def validate(value, schema):
    """Return ``value`` if it fits ``schema`` (a schema or a component's name); raise Invalid naming each bad field."""
    if isinstance(schema, str):
        schema = SCHEMAS[schema]
    errors = {}
    _check(value, schema, "", errors)
    if errors:
        raise Invalid(errors)
    return value
