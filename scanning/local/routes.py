"""HTTP route templates as the Functions host reads them (ASP.NET Core route syntax).

A template is ``/``-separated segments; a segment is a literal (matched case-insensitively) or
one parameter ``{name}``, ``{name?}`` (optional, only as trailing segments), ``{name:int}``
(inline constraint, see "Route constraints" in the ASP.NET Core routing docs), ``{name=default}``
or ``{*name}`` (catch-all, last segment). Templates with several parameters inside one segment
(``{a}.{b}``) are rejected at indexing time rather than matched wrongly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from scanning.errors import ConfigError

_PARAMETER = re.compile(r"^\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                        r"(?P<constraints>(?::[^?=}]+)*)(?P<optional>\?)?(?:=(?P<default>[^}]*))?\}$")
_CONSTRAINT = re.compile(r":([a-z]+)(?:\(([^)]*)\))?")


# int(), float() and uuid.UUID() take any Unicode digit (full-width ones too) and "1_0";
# ASP.NET Core's invariant-culture parsing, which these constraints mirror, takes ASCII only.
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


def _is_int(value: str, bits: int) -> bool:
    return (_INTEGER.fullmatch(value) is not None
            and -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1))


def _is_float(value: str) -> bool:
    if not value.isascii() or "_" in value:
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    if not value.isascii() or "_" in value:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _constraint(name: str, argument: str | None) -> Callable[[str], bool]:
    """A predicate for one ASP.NET Core inline route constraint."""
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda value: _is_int(value, 32),
        "long": lambda value: _is_int(value, 64),
        "bool": lambda value: value.lower() in ("true", "false"),
        "alpha": lambda value: value.isascii() and value.isalpha(),
        "guid": _is_guid,
        "float": _is_float,
        "double": _is_float,
        "decimal": _is_float,
    }
    if name in simple and argument is None:
        return simple[name]
    if argument is not None:
        if name == "regex":
            pattern = re.compile(argument, re.IGNORECASE)
            return lambda value: pattern.search(value) is not None
        numbers = tuple(int(part) for part in argument.split(",")) if re.fullmatch(
            r"-?\d+(?:,-?\d+)?", argument) else ()
        if name == "minlength" and len(numbers) == 1:
            return lambda value: len(value) >= numbers[0]
        if name == "maxlength" and len(numbers) == 1:
            return lambda value: len(value) <= numbers[0]
        if name == "length" and len(numbers) in (1, 2):
            low, high = (numbers[0], numbers[-1])
            return lambda value: low <= len(value) <= high
        if name in ("min", "max", "range") and numbers:
            low = numbers[0] if name != "max" else -(2 ** 63)
            high = numbers[-1] if name != "min" else 2 ** 63
            return lambda value: _is_int(value, 64) and low <= int(value) <= high
    raise ConfigError(f"unsupported route constraint {name!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    literal: str = ""
    parameter: str = ""
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: tuple[Callable[[str], bool], ...] = ()

    @property
    def rank(self) -> int:
        """Lower ranks are more specific; used to order templates like ASP.NET Core does."""
        if not self.parameter:
            return 0
        if self.catch_all:
            return 4
        if self.optional or self.default is not None:
            return 3
        return 1 if self.constraints else 2


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteTemplate:
    template: str
    segments: tuple[Segment, ...]

    @property
    def precedence(self) -> tuple[int, ...]:
        return (*(segment.rank for segment in self.segments), 5)

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for ``path`` (the part after the route prefix), or None."""
        parts = [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.catch_all:
                rest = "/".join(parts[index:])
                if not rest and segment.default is not None:
                    rest = segment.default
                if rest:
                    values[segment.parameter] = rest
                return values
            if index >= len(parts):
                if not segment.parameter or not (segment.optional or segment.default is not None):
                    return None
                if segment.default is not None:
                    values[segment.parameter] = segment.default
                continue
            part = parts[index]
            if not segment.parameter:
                if part.lower() != segment.literal.lower():
                    return None
                continue
            if not part or not all(check(part) for check in segment.constraints):
                return None
            values[segment.parameter] = part
        return values if len(parts) <= len(self.segments) else None


def parse_template(template: str) -> RouteTemplate:
    segments: list[Segment] = []
    raw_segments = [part for part in template.strip("/").split("/")] if template.strip("/") else []
    for position, raw in enumerate(raw_segments):
        if "{" not in raw and "}" not in raw:
            if not raw:
                raise ConfigError(f"route {template!r} has an empty segment")
            segments.append(Segment(literal=raw))
            continue
        found = _PARAMETER.match(raw)
        if found is None:
            raise ConfigError(f"route {template!r}: segment {raw!r} is not one parameter")
        constraints = tuple(
            _constraint(name, argument or None)
            for name, argument in _CONSTRAINT.findall(found["constraints"] or "")
        )
        catch_all = bool(found["star"])
        if catch_all and position != len(raw_segments) - 1:
            raise ConfigError(f"route {template!r}: a catch-all must be the last segment")
        segments.append(Segment(
            parameter=found["name"],
            optional=bool(found["optional"]),
            catch_all=catch_all,
            default=found["default"],
            constraints=constraints,
        ))
    # An optional parameter may only be followed by optional ones (ASP.NET Core rule).
    seen_optional = False
    for segment in segments:
        if segment.optional or segment.default is not None or segment.catch_all:
            seen_optional = True
        elif seen_optional:
            raise ConfigError(f"route {template!r}: a required segment follows an optional one")
    return RouteTemplate(template=template, segments=tuple(segments))
