"""Engine commands as data, and their check against the engine's recorded argument definitions
(flags/<engine>-<version>.json: scripts/engine_flags.py reads SGLang's and vLLM's from their wheels;
TensorRT-LLM's are recorded from its sources). A launch file is written only when every flag, value,
choice and JSON or YAML key in it is one the engine's version defines."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from costmodel.inputs.errors import PlannerError

FLAGS_DIR = Path(__file__).with_name("flags")


@dataclass(frozen=True)
class Command:
    """One engine process: its program words, then (flag, value) pairs (value None for a switch, a tuple
    for a flag that takes several words)."""

    program: tuple[str, ...]
    args: tuple[tuple[str, str | tuple[str, ...] | None], ...]

    def argv(self) -> list[str]:
        out = list(self.program)
        for flag, value in self.args:
            out += [flag] + words_of(value)
        return out

    def value(self, flag: str) -> str | None:
        return next((v for f, v in self.args if f == flag), None)

    def has(self, flag: str) -> bool:
        return any(f == flag for f, _ in self.args)

    def shell(self, indent: str = "  ") -> str:
        """The command as a shell line with one flag a line; ${VAR} references stay expandable."""
        head = " ".join(quote(w) for w in self.program)
        lines = [" ".join([flag] + [quote(w) for w in words_of(value)]) for flag, value in self.args]
        return " \\\n".join([head] + [indent + line for line in lines])


def words_of(value: str | tuple[str, ...] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def quote(word: str) -> str:
    """Shell-quote a word, keeping ${VAR} and $(( )) expandable (double quotes) where it has any."""
    if "$" in word:
        return '"' + word.replace('"', '\\"') + '"'
    return shlex.quote(word)


@dataclass(frozen=True)
class FlagTable:
    engine: str
    version: str
    flags: dict[str, dict]  # canonical name -> {value, choices, aliases, json_keys?}
    yaml_keys: dict | None = None
    router_keys: dict | None = None
    source: dict | None = None

    def lookup(self, flag: str) -> tuple[str, dict] | None:
        """(canonical name, definition) of a flag or one of its aliases."""
        if flag in self.flags:
            return flag, self.flags[flag]
        return next(((name, d) for name, d in self.flags.items() if flag in d["aliases"]), None)


@cache
def table(engine: str, version: str) -> FlagTable:
    path = FLAGS_DIR / f"{engine}-{version}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in FLAGS_DIR.glob("*.json")))
        raise PlannerError(f"no recorded flags for {engine} {version}", field="engine.version",
                           fix=f"use a version with recorded flags ({known})")
    d = json.loads(path.read_text())
    return FlagTable(d["engine"], d["version"], d["flags"], d.get("yaml_keys"), d.get("router_keys"), d["source"])


def command_problems(t: FlagTable, c: Command) -> list[str]:
    """Every flag of `c` that the engine's version does not define as used: unknown, a switch given a
    value, a value missing, a value outside the choices, a JSON value with keys the config lacks."""
    out = []
    for flag, value in c.args:
        found = t.lookup(flag)
        if found is None:
            out.append(f"{flag}: not a flag of {t.engine} {t.version}")
            continue
        name, d = found
        if d["value"] != (value is not None):
            out.append(f"{flag}: {'takes a value' if d['value'] else 'is a switch and takes no value'}")
        elif value is not None and d["choices"] is not None and value not in d["choices"]:
            out.append(f"{flag} {value}: not one of {', '.join(d['choices'])}")
        elif value is not None and "json_keys" in d:
            out += [f"{flag}: {k} is not a key of its config" for k in json.loads(value) if k not in d["json_keys"]]
    return out


def yaml_problems(allowed: dict | None, data: dict, where: str = "") -> list[str]:
    """Keys of `data` (nested) that the recorded key tree does not have."""
    out = []
    for key, value in data.items():
        path = f"{where}{key}"
        if allowed is None or key not in allowed:
            out.append(f"{path}: not a recorded key")
        elif isinstance(value, dict) and isinstance(allowed[key], dict):
            out += yaml_problems(allowed[key], value, path + ".")
    return out


def refused(t: FlagTable, problems: list[str], where: str | None) -> PlannerError:
    """One error for what the engine's version would refuse: in a launch file about to be written (where
    None: the emitter and the recorded flags disagree), or in one read back from `where`."""
    problem = f"{t.engine} {t.version} would refuse it: {'; '.join(problems)}"
    if where is None:
        return PlannerError(problem, field="--emit", fix="report this: the recorded flags and the emitter disagree")
    return PlannerError(problem, file=where, field=problems[0].split(":")[0].split()[0],
                        fix="restore the emitted flags and options, or re-emit")


def checked(t: FlagTable, c: Command, where: str | None = None) -> Command:
    """`c`, or one error naming the flags the engine's version does not take (a launch file is never
    written, or read back, with a flag the engine would refuse)."""
    problems = command_problems(t, c)
    if problems:
        raise refused(t, problems, where)
    return c


def checked_options(t: FlagTable, allowed: dict | None, data, where: str | None = None) -> dict:
    """`data` (an options or router YAML), or one error naming the keys `allowed` lacks."""
    problems = yaml_problems(allowed, data) if isinstance(data, dict) else ["the options are not a mapping"]
    if problems:
        raise refused(t, problems, where)
    return data


def parse(t: FlagTable, words: list[str], program_words: int) -> Command:
    """A command line split into words back into a Command: the first `program_words` are the program;
    each flag takes the next word when the engine defines it with a value (`--flag=value` too), and so
    does a flag it does not define (a misspelt one keeps its value, and the refusal names the flag once)."""
    program, rest, args = tuple(words[:program_words]), words[program_words:], []
    i = 0
    while i < len(rest):
        word = rest[i]
        flag, _, inline = word.partition("=")
        found = t.lookup(flag)
        takes = found is None or found[1]["value"]
        if takes and not inline and i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            args.append((flag, rest[i + 1]))
            i += 2
            continue
        args.append((flag, inline or None))
        i += 1
    return Command(program, tuple(args))
