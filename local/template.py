"""Read template.yaml as CloudFormation would, offline: SAM transform, parameters, conditions, intrinsics.

The local runtime must run exactly what deploys, so it reads the same template: aws-sam-translator expands the
SAM resources (Globals merged, events turned into rules, mappings, schedules and an OpenAPI body), then
`Resolver` turns the few intrinsics that matter locally (Ref, GetAtt, Sub, Join, If, ...) into local names,
URLs and ARNs.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CODE_BUCKET = "parley-local-code"
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"


class TemplateError(Exception):
    """The template can't run locally; the message names the resource/property and what to change."""


@dataclass(frozen=True)
class SamEvent:
    """A SAM function event, remembered before the transform renames it (`Sweep` -> `RetryFunctionSweep`)."""

    function_id: str
    name: str
    type: str


@dataclass(frozen=True)
class LoadedTemplate:
    path: Path
    sam: dict[str, Any]
    cfn: dict[str, Any]
    parameters: dict[str, str]
    code_dirs: dict[str, Path]
    layer_dirs: dict[str, Path]
    sam_events: dict[str, SamEvent]

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.cfn.get("Resources", {})
        return resources


class _NoIamLoader:
    """samtranslator asks IAM for managed-policy ARNs; offline there is nothing to ask."""

    def load(self) -> dict[str, str]:
        return {}


def _local_uri(value: Any, template_dir: Path, bucket_key: str) -> tuple[Path | None, Any]:
    """Map a local CodeUri/ContentUri to (local dir, s3:// placeholder) so the transform accepts it."""
    if isinstance(value, str) and not value.startswith("s3://"):
        return (template_dir / value).resolve(), f"s3://{CODE_BUCKET}/{bucket_key}"
    return None, value


def load_template(
    path: Path, parameters: Mapping[str, str] | None = None, *, fill_missing: bool = False
) -> LoadedTemplate:
    """Parse and SAM-transform a template; CodeUri/ContentUri stay known as local directories.

    fill_missing: parameters without a Default and not given get a placeholder (with a warning) instead of an
    error, so a template that needs deploy-time values still runs locally.
    """
    os.environ.setdefault(
        "AWS_DEFAULT_REGION", "us-east-1"
    )  # samtranslator fails with NoRegionFound otherwise
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    path = path.resolve()
    if not path.is_file():
        raise TemplateError(f"no template at {path}")
    try:
        sam: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    except Exception as exc:  # yaml errors come in several types; the message is what matters
        raise TemplateError(f"{path.name} is not valid YAML: {exc}") from exc
    if not isinstance(sam, dict) or not isinstance(sam.get("Resources"), dict):
        raise TemplateError(f"{path.name} has no Resources section")

    values = _parameter_values(sam, parameters or {}, path.name, fill_missing)
    work = copy.deepcopy(sam)
    template_dir = path.parent
    code_dirs: dict[str, Path] = {}
    layer_dirs: dict[str, Path] = {}
    sam_events: dict[str, SamEvent] = {}

    globals_fn = work.get("Globals", {}).get("Function", {}) if isinstance(work.get("Globals"), dict) else {}
    global_code_dir, placeholder = _local_uri(globals_fn.get("CodeUri"), template_dir, "globals")
    if global_code_dir is not None:
        globals_fn["CodeUri"] = placeholder

    for logical_id, resource in work["Resources"].items():
        props = resource.get("Properties") or {}
        rtype = resource.get("Type")
        if rtype == "AWS::Serverless::Function":
            local_dir, props_value = _local_uri(props.get("CodeUri"), template_dir, logical_id)
            if local_dir is not None:
                props["CodeUri"] = props_value
                code_dirs[logical_id] = local_dir
            elif "CodeUri" not in props and global_code_dir is not None:
                code_dirs[logical_id] = global_code_dir
            for event_name, event in (props.get("Events") or {}).items():
                sam_events[f"{logical_id}{event_name}"] = SamEvent(
                    logical_id, event_name, str(event.get("Type"))
                )
        elif rtype == "AWS::Serverless::LayerVersion":
            local_dir, props_value = _local_uri(props.get("ContentUri"), template_dir, logical_id)
            if local_dir is not None:
                props["ContentUri"] = props_value
                layer_dirs[logical_id] = local_dir

    transforms = work.get("Transform")
    uses_sam = transforms == SAM_TRANSFORM or (isinstance(transforms, list) and SAM_TRANSFORM in transforms)
    if uses_sam:
        try:
            cfn: dict[str, Any] = transform(work, dict(values), _NoIamLoader())
        except InvalidDocumentException as exc:
            causes = "; ".join(str(getattr(c, "message", c)) for c in getattr(exc, "causes", [])) or str(exc)
            raise TemplateError(f"{path.name} failed the SAM transform: {causes}") from exc
    else:
        cfn = work
    return LoadedTemplate(path, sam, cfn, values, code_dirs, layer_dirs, sam_events)


def _parameter_values(
    sam: dict[str, Any], overrides: Mapping[str, str], name: str, fill_missing: bool
) -> dict[str, str]:
    declared: dict[str, Any] = sam.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(
            f"{name} declares no parameter {', '.join(unknown)} (it has: {', '.join(declared)})"
        )
    values: dict[str, str] = {}
    for key, spec in declared.items():
        spec = spec if isinstance(spec, dict) else {}
        if key in overrides:
            value: Any = overrides[key]
        elif "Default" in spec:
            value = spec["Default"]
        elif fill_missing:
            # Deploy-time values (an issuer URL, an audience) often have no local meaning; say so once.
            value = "0" if spec.get("Type") == "Number" else f"local-{key}"
            log.warning(
                "parameter %s has no Default: using %r locally (pass parameters= to set it)", key, value
            )
        else:
            raise TemplateError(f"parameter {key} in {name} has no Default; pass parameters={{{key!r}: ...}}")
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        value = str(value)
        allowed = spec.get("AllowedValues")
        if key in overrides and isinstance(allowed, list) and value not in [str(a) for a in allowed]:
            raise TemplateError(f"parameter {key}={value!r} is not one of {allowed} in {name}")
        values[key] = value
    return values


# ----------------------------------------------------------------------------------------------------
# Intrinsics


class _NoValue:
    """AWS::NoValue: the property disappears."""


NO_VALUE = _NoValue()
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Registry:
    """What each logical id resolves to locally: `Ref` value and `Fn::GetAtt` attributes."""

    refs: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, logical_id: str, ref: Any, **attrs: Any) -> None:
        self.refs[logical_id] = ref
        self.attrs[logical_id] = dict(attrs)


class Resolver:
    """Evaluate the intrinsic functions CloudFormation would, against local physical names.

    Unsupported intrinsics (ImportValue, GetAZs, ...) raise TemplateError naming `where`, so a template change
    that can't run locally fails at `make dev` with the variable that needs attention.
    """

    def __init__(self, template: dict[str, Any], registry: Registry) -> None:
        self._mappings: dict[str, Any] = template.get("Mappings") or {}
        self._condition_defs: dict[str, Any] = template.get("Conditions") or {}
        self._conditions: dict[str, bool] = {}
        self.registry = registry
        self._functions: dict[str, Callable[[Any, str], Any]] = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": lambda arg, where: base64.b64encode(self._str(arg, where).encode()).decode(),
            "Fn::ToJsonString": lambda arg, where: json.dumps(
                self.resolve(arg, where), separators=(",", ":")
            ),
            "Fn::Equals": lambda arg, where: self._condition_expr({"Fn::Equals": arg}, where),
            "Fn::Not": lambda arg, where: self._condition_expr({"Fn::Not": arg}, where),
            "Fn::And": lambda arg, where: self._condition_expr({"Fn::And": arg}, where),
            "Fn::Or": lambda arg, where: self._condition_expr({"Fn::Or": arg}, where),
        }

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key in self._functions:
                    return self._functions[key](arg, where)
                if key.startswith("Fn::"):
                    raise TemplateError(f"{where}: {key} is not supported by the local runtime")
            out = {}
            for k, v in value.items():
                resolved = self.resolve(v, f"{where}.{k}")
                if resolved is not NO_VALUE:
                    out[k] = resolved
            return out
        if isinstance(value, list):
            items = [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in items if v is not NO_VALUE]
        return value

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self._condition_defs:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = self._condition_expr(self._condition_defs[name], f"Conditions.{name}")
        return self._conditions[name]

    def resource_enabled(self, resource: dict[str, Any]) -> bool:
        name = resource.get("Condition")
        return True if not isinstance(name, str) else self.condition(name)

    # -- individual functions

    def _str(self, value: Any, where: str) -> str:
        resolved = self.resolve(value, where)
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if isinstance(resolved, str | int | float):
            return str(resolved)
        raise TemplateError(f"{where}: expected a string, got {json.dumps(resolved, default=str)[:120]}")

    def _ref(self, name: Any, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.registry.refs:
            return self.registry.refs[name]
        raise TemplateError(
            f"{where}: Ref {name!r} can't be resolved locally "
            "(not a parameter, a pseudo parameter or an emulated resource)"
        )

    def _get_att(self, arg: Any, where: str) -> Any:
        if isinstance(arg, str):
            logical_id, _, attribute = arg.partition(".")
        elif isinstance(arg, list) and len(arg) == 2:
            logical_id, attribute = str(arg[0]), self._str(arg[1], where)
        else:
            raise TemplateError(f"{where}: malformed Fn::GetAtt {arg!r}")
        attrs = self.registry.attrs.get(logical_id)
        if attrs is None:
            raise TemplateError(
                f"{where}: Fn::GetAtt {logical_id}.{attribute}: {logical_id} is not emulated locally"
            )
        if attribute not in attrs:
            known = ", ".join(sorted(attrs)) or "none"
            raise TemplateError(
                f"{where}: Fn::GetAtt {logical_id}.{attribute} is not known locally (known: {known})"
            )
        return attrs[attribute]

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
            text, variables = arg[0], arg[1]
        else:
            raise TemplateError(f"{where}: malformed Fn::Sub {arg!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self._str(variables[name], f"{where}.{name}")
            if "." in name and name not in self.registry.refs:
                return self._str({"Fn::GetAtt": name.split(".", 1)}, where)
            return self._str({"Ref": name}, where)

        return _SUB_VAR.sub(replace, text)

    def _join(self, arg: Any, where: str) -> str:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{where}: malformed Fn::Join {arg!r}")
        delimiter = self._str(arg[0], where)
        items = self.resolve(arg[1], where)
        if not isinstance(items, list):
            raise TemplateError(f"{where}: Fn::Join needs a list")
        return delimiter.join(self._str(item, where) for item in items)

    def _select(self, arg: Any, where: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{where}: malformed Fn::Select {arg!r}")
        index = int(self._str(arg[0], where))
        items = self.resolve(arg[1], where)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise TemplateError(f"{where}: Fn::Select index {index} out of range")
        return items[index]

    def _split(self, arg: Any, where: str) -> list[str]:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{where}: malformed Fn::Split {arg!r}")
        return self._str(arg[1], where).split(self._str(arg[0], where))

    def _if(self, arg: Any, where: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
            raise TemplateError(f"{where}: malformed Fn::If {arg!r}")
        return self.resolve(arg[1] if self.condition(arg[0]) else arg[2], where)

    def _find_in_map(self, arg: Any, where: str) -> Any:
        if not (isinstance(arg, list) and len(arg) >= 3):
            raise TemplateError(f"{where}: malformed Fn::FindInMap {arg!r}")
        keys = [self._str(a, where) for a in arg[:3]]
        try:
            return self.resolve(self._mappings[keys[0]][keys[1]][keys[2]], where)
        except KeyError as exc:
            raise TemplateError(f"{where}: Fn::FindInMap {keys} has no value") from exc

    def _condition_expr(self, expr: Any, where: str) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, arg),) = expr.items()
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::Equals" and isinstance(arg, list) and len(arg) == 2:
                return bool(self.resolve(arg[0], where) == self.resolve(arg[1], where))
            if key == "Fn::Not" and isinstance(arg, list) and len(arg) == 1:
                return not self._condition_expr(arg[0], where)
            if key == "Fn::And" and isinstance(arg, list):
                return all(self._condition_expr(a, where) for a in arg)
            if key == "Fn::Or" and isinstance(arg, list):
                return any(self._condition_expr(a, where) for a in arg)
        if isinstance(expr, bool):
            return expr
        raise TemplateError(f"{where}: unsupported condition {json.dumps(expr, default=str)[:200]}")
