"""The one exception type users see: it names the file, the line, the field, what is wrong and the fix."""

from __future__ import annotations


class PlannerError(Exception):
    """A problem in the user's input. The CLI prints `str(err)` and exits with code 2."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.field = field
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        # a problem with no file is in a command-line option (--gpu) or in what the caller passed
        where = self.file or ("command line" if (self.field or "").startswith("--") else "<input>")
        if self.line is not None:
            where += f", line {self.line}"
        parts = [f"{where}:"]
        if self.field:
            parts.append(f"field `{self.field}`:")
        parts.append(self.problem.rstrip(".") + ".")
        if self.fix:
            parts.append("Fix: " + self.fix.rstrip(".") + ".")
        return " ".join(parts)


class FieldProblem(ValueError):
    """Raised inside spec validators to say which field (relative to the spec) is at fault.

    pydantic keeps the original exception in the error's context, so the loader can extend the error's
    location with `field` and report the exact YAML line.
    """

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}. Fix: {fix}")


class PlannerErrors(PlannerError):
    """Several problems found at once (feasibility lists them all); prints one line per problem."""

    def __init__(self, errors: list[PlannerError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.problem, file=first.file, line=first.line, field=first.field, fix=first.fix)

    def message(self) -> str:
        if len(self.errors) == 1:
            return self.errors[0].message()
        return f"{len(self.errors)} problems:\n" + "\n".join(f"  - {e.message()}" for e in self.errors)
