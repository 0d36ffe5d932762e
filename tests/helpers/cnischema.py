"""CNI JSON documents checked against the spec's shapes: a small recursive validator for the
subset of JSON Schema 2020-12 that `cni_schemas/` uses (jsonschema is not a test dependency of
this project), the per-version schemas, and the cross-field rules JSON Schema cannot express.
Shared by the unit tests of cni.result and the plugin's integration tests. The validator refuses
keywords it does not implement, so a schema can never be half-checked."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

from cni.result import dumps

SCHEMAS = Path(__file__).resolve().parent / "cni_schemas"
IF = ipaddress.ip_interface
IP = ipaddress.ip_address


# --- a small JSON Schema validator ---------------------------------------------------------------

class SchemaValidator:
    """Validate JSON documents against the subset of JSON Schema 2020-12 used in cni_schemas/.

    Keywords: type, const, enum, properties, required, additionalProperties (bool or schema),
    minProperties, items, minItems, maxItems, minLength, maxLength, pattern, minimum, maximum,
    format ("ip", "cidr", "mac"), local $ref ("#/$defs/NAME"). Annotations ($schema, $id, title,
    description, $comment, $defs) are ignored; any other keyword is an error in the schema.
    """

    KEYWORDS = {"type", "const", "enum", "properties", "required", "additionalProperties",
                "minProperties", "items", "minItems", "maxItems", "minLength", "maxLength",
                "pattern", "minimum", "maximum", "format", "$ref"}
    ANNOTATIONS = {"$schema", "$id", "title", "description", "$comment", "$defs"}
    MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")

    def __init__(self, schema: dict):
        self.root = schema

    def errors(self, doc) -> list[str]:
        out: list[str] = []
        self._check(doc, self.root, "$", out)
        return out

    @staticmethod
    def _same(a, b) -> bool:
        """JSON equality: true is not 1, 1 is 1.0 only for numbers."""
        if isinstance(a, bool) or isinstance(b, bool):
            return type(a) is type(b) and a == b
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a == b
        if type(a) is not type(b):
            return False
        if isinstance(a, list):
            return len(a) == len(b) and all(SchemaValidator._same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(SchemaValidator._same(a[k], b[k]) for k in a)
        return a == b

    @staticmethod
    def _is_type(doc, name: str) -> bool:
        return {
            "object": lambda: isinstance(doc, dict),
            "array": lambda: isinstance(doc, list),
            "string": lambda: isinstance(doc, str),
            "integer": lambda: isinstance(doc, int) and not isinstance(doc, bool),
            "number": lambda: isinstance(doc, (int, float)) and not isinstance(doc, bool),
            "boolean": lambda: isinstance(doc, bool),
            "null": lambda: doc is None,
        }[name]()

    def _format_ok(self, doc: str, fmt: str) -> bool:
        try:
            if fmt == "ip":
                ipaddress.ip_address(doc)
                return True
            if fmt == "cidr":
                addr, slash, plen = doc.partition("/")
                ipaddress.ip_address(addr)
                return bool(slash) and plen.isdigit() and ipaddress.ip_interface(doc) is not None
            if fmt == "mac":
                return bool(self.MAC.fullmatch(doc))
        except ValueError:
            return False
        raise ValueError(f"unknown format {fmt!r}")

    def _check(self, doc, schema: dict, path: str, out: list[str]) -> None:
        unknown = set(schema) - self.KEYWORDS - self.ANNOTATIONS
        if unknown:
            raise ValueError(f"schema keyword(s) not implemented: {sorted(unknown)} at {path}")
        if "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"only local $ref is implemented, got {ref!r}")
            target = self.root
            for part in ref[2:].split("/"):
                target = target[part]
            self._check(doc, target, path, out)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(self._is_type(doc, t) for t in types):
                out.append(f"{path}: expected type {'/'.join(types)}, got {json.dumps(doc)}")
                return
        if "const" in schema and not self._same(doc, schema["const"]):
            out.append(f"{path}: expected {json.dumps(schema['const'])}, got {json.dumps(doc)}")
        if "enum" in schema and not any(self._same(doc, e) for e in schema["enum"]):
            out.append(f"{path}: {json.dumps(doc)} not in {json.dumps(schema['enum'])}")
        if isinstance(doc, str):
            if len(doc) < schema.get("minLength", 0):
                out.append(f"{path}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(doc) > schema["maxLength"]:
                out.append(f"{path}: longer than {schema['maxLength']}")
            if "pattern" in schema and not re.search(schema["pattern"], doc):
                out.append(f"{path}: {json.dumps(doc)} does not match {schema['pattern']}")
            if "format" in schema and not self._format_ok(doc, schema["format"]):
                out.append(f"{path}: {json.dumps(doc)} is not a {schema['format']}")
        if self._is_type(doc, "number"):
            if "minimum" in schema and doc < schema["minimum"]:
                out.append(f"{path}: {doc} below {schema['minimum']}")
            if "maximum" in schema and doc > schema["maximum"]:
                out.append(f"{path}: {doc} above {schema['maximum']}")
        if isinstance(doc, list):
            if len(doc) < schema.get("minItems", 0):
                out.append(f"{path}: fewer than {schema['minItems']} items")
            if "maxItems" in schema and len(doc) > schema["maxItems"]:
                out.append(f"{path}: more than {schema['maxItems']} items")
            if "items" in schema:
                for i, item in enumerate(doc):
                    self._check(item, schema["items"], f"{path}[{i}]", out)
        if isinstance(doc, dict):
            if len(doc) < schema.get("minProperties", 0):
                out.append(f"{path}: fewer than {schema['minProperties']} properties")
            for key in schema.get("required", ()):
                if key not in doc:
                    out.append(f"{path}: missing required {key!r}")
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            for key, value in doc.items():
                if key in props:
                    self._check(value, props[key], f"{path}.{key}", out)
                elif extra is False:
                    out.append(f"{path}: unexpected property {key!r}")
                elif isinstance(extra, dict):
                    self._check(value, extra, f"{path}.{key}", out)


def load_schema(name: str) -> SchemaValidator:
    return SchemaValidator(json.loads((SCHEMAS / name).read_text()))


RESULT_SCHEMA = {"0.3.0": "result-0.4.0.json", "0.3.1": "result-0.4.0.json",
                 "0.4.0": "result-0.4.0.json", "1.0.0": "result-1.0.0.json",
                 "1.1.0": "result-1.1.0.json"}


def semantic_problems(doc: dict) -> list[str]:
    """Rules the schemas cannot express: indexes in range, families consistent."""
    out = []
    n = len(doc.get("interfaces", []))
    for i, ip in enumerate(doc.get("ips", [])):
        addr = IF(ip["address"])
        if "interface" in ip and ip["interface"] >= n:
            out.append(f"ips[{i}].interface {ip['interface']} out of range ({n} interfaces)")
        if "version" in ip and ip["version"] != str(addr.version):
            out.append(f"ips[{i}].version {ip['version']} but address {addr}")
        if "gateway" in ip and IP(ip["gateway"]).version != addr.version:
            out.append(f"ips[{i}].gateway family differs from the address")
    for i, r in enumerate(doc.get("routes", [])):
        if "gw" in r and IP(r["gw"]).version != IF(r["dst"]).version:
            out.append(f"routes[{i}].gw family differs from dst")
    return out


def assert_valid_result(doc: dict, version: str) -> None:
    errors = load_schema(RESULT_SCHEMA[version]).errors(doc) + semantic_problems(doc)
    assert not errors, f"result {version} violates the spec shape:\n" + "\n".join(errors)
    assert doc["cniVersion"] == version
    json.loads(dumps(doc))        # serialisable, round-trips


def assert_valid_error(doc: dict) -> None:
    errors = load_schema("error.json").errors(doc)
    assert not errors, "error JSON violates the shape:\n" + "\n".join(errors)


