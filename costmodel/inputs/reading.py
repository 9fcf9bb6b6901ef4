"""One reading path for every file the tool opens: a size limit, UTF-8 with a clear message, and for YAML
one parse (libyaml's C composer when present) with limits on nesting, alias expansion and duplicate keys.
Each failure is one PlannerError naming the file and the fix; no value is ever quoted whole.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from costmodel.inputs.errors import PlannerError

MAX_SPEC_BYTES = 1_000_000  # scenarios, models, GPUs, configs: the bundled ones are under 10 KB
MAX_DATA_BYTES = 200_000_000  # traces, profiles, sweep journals
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000  # nodes visited with aliases expanded: a billion-laughs file stops here


class _Composer(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """libyaml's safe composer (when present), where a number is a number in every notation YAML allows:
    YAML 1.1 reads `1e3` and `2E-1` (no dot) as strings, YAML 1.2 and every JSON reader as numbers, so
    a sweep axis `rate_per_s: [1e3]` and a scenario's `2e1` mean the same."""


_Composer.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))
_COMPOSER = _Composer


def clip(value: object, limit: int = 80) -> str:
    """A value for an error message: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_bytes(path: Path, limit_bytes: int = MAX_SPEC_BYTES) -> bytes:
    """The bytes of a regular file (symlinks followed), refused when it is anything else (a directory,
    a device, a FIFO, a socket) or over `limit_bytes`. At most limit + 1 bytes are read, whatever `stat`
    says: a device reports size 0 and never ends. O_NONBLOCK keeps the open of a FIFO from waiting for a
    writer; the file type is checked on the opened descriptor, so a swap after a check cannot slip through."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise PlannerError(f"cannot read the file ({e.strerror})", file=str(path), fix="check the path") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise PlannerError("cannot read the file (is a directory)", file=str(path), fix="pass a file, not a folder")
        if not stat.S_ISREG(mode):
            raise PlannerError(f"is not a regular file (a {_file_type(mode)})", file=str(path),
                               fix="pass a file saved on disk; devices, pipes and sockets are not read")
        raw = _read_at_most(fd, limit_bytes + 1)
    finally:
        os.close(fd)
    return check_size(raw, str(path), limit_bytes)


def _read_at_most(fd: int, n_bytes: int) -> bytes:
    chunks, left = [], n_bytes
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _file_type(mode: int) -> str:
    kinds = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"),
             (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


def check_size(raw: bytes, name: str, limit_bytes: int = MAX_SPEC_BYTES) -> bytes:
    """`raw`, refused when over `limit_bytes` (files, dashboard uploads and edits alike)."""
    if len(raw) > limit_bytes:
        raise PlannerError(f"the file is over the {limit_bytes:,} bytes this kind of file may have", file=name,
                           fix="pass the intended file; a spec is a few kilobytes")
    return raw


def decode_text(raw: bytes, name: str, limit_bytes: int = MAX_SPEC_BYTES) -> str:
    """UTF-8 text of `raw` (a BOM allowed), within the size limit; `name` is what errors call it."""
    check_size(raw, name, limit_bytes)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PlannerError(f"the file is not UTF-8 text (byte {e.start} cannot be decoded)", file=name,
                           fix="save it as UTF-8 (e.g. `iconv -t utf-8`)") from None


def read_text(path: Path, limit_bytes: int = MAX_SPEC_BYTES) -> str:
    """The file's text, refused when it is not a regular file, too large, or not UTF-8."""
    return decode_text(read_bytes(path, limit_bytes), str(path), limit_bytes)


def parse_yaml(text: str, path: Path) -> tuple[object, yaml.Node | None]:
    """(data, node tree) of a YAML document, parsed once, within the depth and size limits."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
        if node is None:
            return None, None
        _check_tree(node, path)
        return yaml.SafeLoader("").construct_document(node), node
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PlannerError(f"malformed YAML ({clip(problem, 120)})", file=str(path),
                           line=mark.line + 1 if mark else None,
                           fix="check the indentation, colons and quoting around that line") from None
    except RecursionError:
        raise PlannerError(f"the YAML is nested too deeply (over {MAX_YAML_DEPTH} levels)", file=str(path),
                           fix="flatten the file: a spec is a few levels deep") from None
    except ValueError as e:  # e.g. an integer of thousands of digits
        raise PlannerError(f"a value cannot be read ({clip(str(e), 120)})", file=str(path),
                           fix="write numbers of ordinary size (e.g. 1.0e12)") from None


def _check_tree(root: yaml.Node, path: Path) -> None:
    """Walk the node tree as the loader would expand it: depth, total nodes (aliases re-visited), and
    duplicate keys in a mapping, each refused with the line it is on."""
    stack, visited = [(root, 1)], 0
    while stack:
        node, depth = stack.pop()
        visited += 1
        line = node.start_mark.line + 1
        if depth > MAX_YAML_DEPTH:
            raise PlannerError(f"the YAML is nested too deeply (over {MAX_YAML_DEPTH} levels)", file=str(path),
                               line=line, fix="flatten the file: a spec is a few levels deep")
        if visited > MAX_YAML_NODES:
            raise PlannerError(f"the YAML expands to over {MAX_YAML_NODES:,} values (aliases of aliases?)",
                               file=str(path), line=line, fix="remove the repeated anchors and aliases")
        if isinstance(node, yaml.MappingNode):
            keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
            dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
            if dup is not None:
                raise PlannerError(f"the key {clip(dup)} appears twice in one mapping", file=str(path),
                                   line=line, fix="keep one of the two (YAML would silently use the last)")
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def finite_or_none(value: object) -> object:
    """`value` with every NaN or infinite float replaced by None (JSON null), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def strict_dumps(value: object, **kwargs) -> str:
    """JSON as RFC 8259 has it, which every tool writes: an undefined number is null, never NaN."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)


# ------------------------------------------------------------------------------------------------ CSV


@dataclass(frozen=True)
class CsvTable:
    """A CSV file read whole and checked for shape: every row has the header's columns."""

    file: str
    header: dict[str, str]  # "# key: value" comment lines above the table (a profile's provenance)
    columns: list[str]
    rows: list[dict[str, str]]
    lines: list[int]  # the 1-based line of each row in the file, for errors

    def error(self, i: int, column: str | None, problem: str, fix: str) -> PlannerError:
        return PlannerError(problem, file=self.file, line=self.lines[i], field=column, fix=fix)

    def number(self, i: int, column: str, fix: str, *, zero: bool = False, integer: bool = False) -> float:
        """Row i's `column` as a finite number above 0 (or 0 itself, with `zero`; whole, with `integer`)."""
        text = self.rows[i][column].strip()
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            what = "whole number" if integer else "finite number"
            raise self.error(i, column, f"{clip(text)} is not a {what} {'of 0 or more' if zero else 'above 0'}", fix)
        return value


def read_csv(path: Path, required: tuple[str, ...], max_rows: int, fix: str,
             limit_bytes: int = MAX_DATA_BYTES) -> CsvTable:
    """A CSV through the one reading path, refused before any row is parsed when it has over `max_rows`
    rows, and then for a missing column or a row of another length than the header; `fix` says what the
    file should be. Blank lines are skipped; lines starting with '#' above the table are its header."""
    text = read_text(path, limit_bytes)
    if text.count("\n") > 2 * max_rows + 1000:  # refused before the lines are split (a million-row file)
        raise _too_many_rows(path, text.count("\n"), max_rows)
    lines = text.splitlines()
    body = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and not line.startswith("#")]
    if len(body) - 1 > max_rows:
        raise _too_many_rows(path, len(body) - 1, max_rows)
    if not body:
        raise PlannerError("has no header row and no data", file=str(path), line=1, fix=fix)
    comments = dict(line[2:].split(": ", 1) for line in lines if line.startswith("# ") and ": " in line)
    try:
        parsed = [next(csv.reader([line])) for _, line in body]
    except (csv.Error, StopIteration) as e:
        raise PlannerError(f"is not CSV ({clip(str(e), 100)})", file=str(path), fix=fix) from None
    columns = [c.strip() for c in parsed[0]]
    missing = [c for c in required if c not in columns]
    if missing:
        raise PlannerError(f"lacks the column(s) {', '.join(missing)} (it has {clip(', '.join(columns), 120)})",
                           file=str(path), line=body[0][0], fix=fix)
    for (n, _), row in zip(body[1:], parsed[1:], strict=True):
        if len(row) != len(columns):
            raise PlannerError(f"this row has {len(row)} fields, the header {len(columns)}", file=str(path), line=n,
                               fix="give every row one value per column (quote values that hold commas)")
    return CsvTable(str(path), comments, columns, [dict(zip(columns, r, strict=True)) for r in parsed[1:]],
                    [n for n, _ in body[1:]])


def _too_many_rows(path: Path, rows: int, max_rows: int) -> PlannerError:
    return PlannerError(f"has about {rows:,} rows, over the {max_rows:,} this kind of file may have",
                        file=str(path), fix=f"split the file or keep at most {max_rows:,} rows")
