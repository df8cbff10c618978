"""A small reader and writer for the YAML subset that calibration files use.

MVSEC's kalibr camchain files and DSEC's ``cam_to_cam.yaml`` use nested block mappings, block sequences
(also at the key's own indentation, as kalibr writes them), flow lists ``[a, b]`` and plain scalars.
PyYAML is not a dependency of the package and OpenCV's FileStorage rejects kalibr's indentation, so
this module parses exactly that subset and raises InputError (line number included) on anything else.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from eventstereo.errors import InputError

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _scalar(text: str, where: str) -> Any:
    s = text.strip()
    if s == "" or s in ("~", "null", "Null", "NULL"):
        return None
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if s.lower() in (".nan",):
        return math.nan
    if s.lower() in (".inf", "+.inf"):
        return math.inf
    if s.lower() == "-.inf":
        return -math.inf
    if _NUMBER.match(s):
        if re.match(r"^[-+]?\d+$", s):
            return int(s)
        return float(s)
    if s[0] in "{&*!|>":
        raise InputError(f"unsupported YAML syntax {s[:20]!r}", source=where)
    return s


def _flow(text: str, where: str) -> Any:
    """Parse a flow list such as ``[1, 2, [3, 4]]``."""
    pos = 0

    def parse() -> Any:
        nonlocal pos
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if pos < len(text) and text[pos] == "[":
            pos += 1
            items = []
            while True:
                while pos < len(text) and text[pos] == " ":
                    pos += 1
                if pos >= len(text):
                    raise InputError(f"unclosed '[' in {text!r}", source=where)
                if text[pos] == "]":
                    pos += 1
                    return items
                items.append(parse())
                while pos < len(text) and text[pos] == " ":
                    pos += 1
                if pos < len(text) and text[pos] == ",":
                    pos += 1
        start = pos
        while pos < len(text) and text[pos] not in ",]":
            pos += 1
        return _scalar(text[start:pos], where)

    value = parse()
    if text[pos:].strip():
        raise InputError(f"unexpected text after a flow list: {text[pos:]!r}", source=where)
    return value


def _value(text: str, where: str) -> Any:
    s = text.strip()
    return _flow(s, where) if s.startswith("[") else _scalar(s, where)


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out).rstrip()


def parse_yaml(text: str, source: str = "yaml") -> Any:
    """Parse the calibration YAML subset into dicts, lists and scalars."""
    lines: list[list] = []  # [indent, content, line number]
    for no, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise InputError(f"line {no}: tab in indentation", source=source)
        s = _strip_comment(raw)
        if not s.strip() or s.startswith("%") or s.strip() in ("---", "..."):
            continue
        lines.append([len(s) - len(s.lstrip(" ")), s.strip(), no])

    def where(i: int) -> str:
        return f"{source} line {lines[i][2]}" if i < len(lines) else source

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1] == "-" or lines[i][1].startswith("- "):
            return seq(i, indent)
        return mapping(i, indent)

    def seq(i: int, indent: int) -> tuple[list, int]:
        items = []
        while (
            i < len(lines) and lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1].startswith("- "))
        ):
            rest = lines[i][1][1:]
            body = rest.lstrip(" ")
            if not body:
                if i + 1 < len(lines) and lines[i + 1][0] > indent:
                    value, i = block(i + 1, lines[i + 1][0])
                else:
                    value, i = None, i + 1
            elif (
                body.startswith("- ")
                or body == "-"
                or (":" in body and not body.startswith("[") and _key_value(body) is not None)
            ):
                # a nested item on the same line: re-read it as a line at its own column
                lines[i] = [indent + 1 + len(rest) - len(body), body, lines[i][2]]
                value, i = block(i, lines[i][0])
            else:
                value, i = _value(body, where(i)), i + 1
            items.append(value)
        if i < len(lines) and lines[i][0] > indent:
            raise InputError(f"line {lines[i][2]}: bad indentation", source=source)
        return items, i

    def mapping(i: int, indent: int) -> tuple[dict, int]:
        out: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent:
            kv = _key_value(lines[i][1])
            if kv is None:
                raise InputError(
                    f"line {lines[i][2]}: expected 'key: value', got {lines[i][1]!r}", source=source
                )
            key, rest = kv
            if rest:
                out[key], i = _value(rest, where(i)), i + 1
                continue
            i += 1
            if i < len(lines) and (
                lines[i][0] > indent
                or (lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1].startswith("- ")))
            ):
                out[key], i = block(i, lines[i][0])
            else:
                out[key] = None
        if i < len(lines) and lines[i][0] > indent:
            raise InputError(f"line {lines[i][2]}: bad indentation", source=source)
        return out, i

    if not lines:
        return None
    value, i = block(0, lines[0][0])
    if i < len(lines):
        raise InputError(f"line {lines[i][2]}: unexpected content {lines[i][1]!r}", source=source)
    return value


def _key_value(s: str) -> tuple[str, str] | None:
    m = re.match(r"^(\"[^\"]*\"|'[^']*'|[^:\[\]{}#\"']+?)\s*:(\s+(.*))?$", s)
    if not m:
        return None
    key = m.group(1).strip()
    if key[:1] in "'\"":
        key = key[1:-1]
    return key, (m.group(3) or "").strip()


def load_yaml(path: str | Path) -> Any:
    """Read a calibration YAML file; InputError if it is missing or not in the supported subset."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError("calibration file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read calibration file: {e}", source=str(path)) from None
    return parse_yaml(text, str(path))


def dump_yaml(value: Any, indent: int = 0) -> str:
    """Write nested dicts / lists of numbers in the kalibr style (matrices as rows of flow lists)."""

    def flow(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(flow(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(float(v))
        return str(v)

    pad = " " * indent
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict):
                out.append(f"{pad}{k}:\n{dump_yaml(v, indent + 2)}")
            elif isinstance(v, (list, tuple)) and v and isinstance(v[0], (list, tuple)):
                out.append(f"{pad}{k}:\n" + "".join(f"{pad}- {flow(row)}\n" for row in v))
            else:
                out.append(f"{pad}{k}: {flow(v)}\n")
        return "".join(out)
    return pad + flow(value) + "\n"
