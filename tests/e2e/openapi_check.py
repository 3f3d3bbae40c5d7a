"""Checks that an HTTP response is allowed by api/openapi.yaml: its status code is
documented for the operation, and a JSON body has the documented required fields."""
import json
import os
import re

import yaml

SPEC_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "api", "openapi.yaml")

with open(SPEC_PATH) as f:
    SPEC = yaml.safe_load(f)


def _resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = SPEC
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def _operation(method, path):
    for template, item in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None, None


def check(method, path, status, content_type, body):
    """Raises AssertionError when the response is not what the document allows.
    Responses to paths or methods the document does not describe (404/405 for
    unknown routes) are allowed only as problem documents."""
    path = path.split("?", 1)[0]
    template, op = _operation(method, path)
    if op is None:
        assert status in (404, 405), f"{method} {path} is not in api/openapi.yaml"
        assert content_type.startswith("application/problem+json")
        return
    responses = op["responses"]
    key = str(status)
    assert key in responses, f"{method} {template}: {status} is not documented"
    response = _resolve(responses[key])
    content = response.get("content")
    if not content:
        return
    media = content_type.split(";", 1)[0].strip()
    assert media in content, f"{method} {template} {status}: {media} not documented"
    schema = _resolve(content[media].get("schema", {}))
    if body and schema.get("type") == "object":
        doc = json.loads(body)
        missing = [f for f in schema.get("required", []) if f not in doc]
        assert not missing, f"{method} {template} {status}: missing {missing}"
