"""Mutation testing for one module: do its tests notice when the code is wrong?

    .venv/bin/python tools/mutate.py grants/dpop.py            # the module's focused tests
    .venv/bin/python tools/mutate.py keys/jwks.py --jobs 2 --report /tmp/jwks.json
    .venv/bin/python tools/mutate.py --all                     # every module in targets.py
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python tools/mutate.py authserver/revocation.py \
        --resume-from /tmp/revocation.json                        # the Redis branches, survivors only

Each mutant is one small change to the module's source (a flipped comparison, a negated
condition, a deleted ``raise``, a dropped WHERE term, a changed constant: the operators below).
The module's focused tests (``tools/mutation/targets.py``) run once with per-test coverage; each
mutant then runs only the tests that executed its line, stopping at the first failure, in a copy
of the tree (the working tree is never touched). A mutant is *killed* when a test fails (or times
out), *survives* when every test passes. Mutants listed in ``tools/mutation/equivalent.txt``, each
with the reason it cannot change behaviour, are left out of the score:

    score = killed / (mutants - equivalent)

Mutant ids name the function and the change, not line numbers, so the list of equivalents stays
valid while the code around them moves.
"""

from __future__ import annotations

import argparse
import ast
import compileall
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from mutation.targets import TARGETS  # noqa: E402

EQUIVALENT = ROOT / "tools" / "mutation" / "equivalent.txt"
COPY_DIRS = ("authserver", "grants", "keys", "tests")
COPY_FILES = ("setup.cfg", "wsgi.py")
TIMEOUT = 120
# pytest plugins installed for other uses (Schemathesis and Hypothesis, parallel runs, coverage,
# anyio) that no focused test needs.
UNUSED_PLUGINS = ("hypothesispytest", "schemathesis", "xdist", "xdist.looponfail", "pytest_cov",
                  "anyio")  # fmt: skip

# -- mutant generation --------------------------------------------------------------------------

_SWAP_CMP: dict[type, type] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_SWAP_BIN: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.FloorDiv: ast.Div,
}
_SWAP_NAMES = {"min": "max", "max": "min", "all": "any", "any": "all"}
_SWAP_ATTRS = {"is_": "is_not", "is_not": "is_"}


@dataclass(frozen=True)
class Mutant:
    id: str
    module: str
    line: int
    operator: str
    original: str
    mutated: str
    start: tuple[int, int]
    end: tuple[int, int]


def _offsets(source: str) -> list[int]:
    starts, pos = [0], 0
    for line in source.splitlines(keepends=True):
        pos += len(line.encode())
        starts.append(pos)
    return starts


class _Collector(ast.NodeVisitor):
    """Walks a module and yields (node, operator, replacement source) for every mutation."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: list[tuple[ast.AST, str, str, str]] = []  # node, qualname, operator, new
        self.scope: list[str] = []
        self.skip: set[int] = set()

    # scopes
    def _scoped(self, node: ast.AST, name: str) -> None:
        self.scope.append(name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._skip_docstring(node)
        self._skip_annotations(node)
        self._scoped(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._skip_docstring(node)
        self._scoped(node, node.name)

    def visit_Module(self, node: ast.Module) -> None:
        self._skip_docstring(node)
        self.generic_visit(node)

    def _skip_docstring(self, node: ast.AST) -> None:
        body = getattr(node, "body", [])
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            self._skip_tree(body[0])

    def _skip_annotations(self, node: ast.FunctionDef) -> None:
        for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
            if arg.annotation is not None:
                self._skip_tree(arg.annotation)
        for arg in (node.args.vararg, node.args.kwarg):
            if arg is not None and arg.annotation is not None:
                self._skip_tree(arg.annotation)
        if node.returns is not None:
            self._skip_tree(node.returns)
        for deco in node.decorator_list:
            self._skip_tree(deco)

    def _skip_tree(self, node: ast.AST) -> None:
        for sub in ast.walk(node):
            self.skip.add(id(sub))

    def _add(self, node: ast.AST, operator: str, new: str) -> None:
        if id(node) in self.skip or not hasattr(node, "lineno"):
            return
        self.found.append((node, ".".join(self.scope) or "<module>", operator, new))

    def generic_visit(self, node: ast.AST) -> None:
        if id(node) in self.skip:
            for child in ast.iter_child_nodes(node):
                self.skip.add(id(child))
        super().generic_visit(node)

    # what is never mutated
    def visit_Import(self, node: ast.Import) -> None:
        return

    visit_ImportFrom = visit_Import  # type: ignore[assignment]

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._skip_tree(node.annotation)
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self._skip_tree(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._add(node, "delete raise", "pass")
        if isinstance(node.exc, ast.Call):
            for arg in node.exc.args:  # messages are not behaviour
                if isinstance(arg, ast.Constant):
                    self._skip_tree(arg)
        self.generic_visit(node)

    # statements
    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Call) and not _is_logging(node.value):
            self._add(node, "delete call", "pass")
        if isinstance(node.value, ast.Call) and _is_logging(node.value):
            self._skip_tree(node)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if all(isinstance(t, ast.Attribute | ast.Subscript) for t in node.targets):
            self._add(node, "delete assignment", "pass")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        swap = _SWAP_BIN.get(type(node.op))
        if swap is not None:
            new = ast.AugAssign(target=node.target, op=swap(), value=node.value)
            self._add(node, "augmented operator", ast.unparse(new))
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None
        ):
            self._add(node, "return None", "return None")
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        self._add(node.test, "negate condition", f"not ({ast.unparse(node.test)})")
        self.generic_visit(node)

    # expressions
    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            swap = _SWAP_CMP.get(type(op))
            if swap is not None:
                ops = list(node.ops)
                ops[i] = swap()
                new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                self._add(node, "comparison", ast.unparse(new))
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._add(node, "and/or", ast.unparse(ast.BoolOp(op=other, values=node.values)))
        for i in range(len(node.values)):
            rest = node.values[:i] + node.values[i + 1 :]
            new = rest[0] if len(rest) == 1 else ast.BoolOp(op=node.op, values=rest)
            self._add(node, "drop operand", f"({ast.unparse(new)})")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._add(node, "remove not", f"({ast.unparse(node.operand)})")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        swap = _SWAP_BIN.get(type(node.op))
        if swap is not None and not _is_string_concat(node):
            new = ast.BinOp(left=node.left, op=swap(), right=node.right)
            self._add(node, "arithmetic", f"({ast.unparse(new)})")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self._add(node, "constant", repr(not value))
        elif isinstance(value, int):
            self._add(node, "constant", repr(value + 1))
            if value != 0:
                self._add(node, "constant", "0")
        elif isinstance(value, str) and value:
            self._add(node, "constant", repr("XX" + value + "XX"))

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _SWAP_NAMES and isinstance(node.ctx, ast.Load):
            self._add(node, "name swap", _SWAP_NAMES[node.id])

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _SWAP_ATTRS:
            new_func = ast.Attribute(value=func.value, attr=_SWAP_ATTRS[func.attr], ctx=ast.Load())
            self._add(
                node, "sql is/is not", ast.unparse(ast.Call(new_func, node.args, node.keywords))
            )
        if isinstance(func, ast.Attribute) and func.attr == "where" and len(node.args) > 1:
            for i in range(len(node.args)):
                args = node.args[:i] + node.args[i + 1 :]
                self._add(node, "drop where term", ast.unparse(ast.Call(func, args, node.keywords)))
        self.generic_visit(node)


def _is_logging(call: ast.Call) -> bool:
    f = call.func
    return (
        isinstance(f, ast.Attribute)
        and isinstance(f.value, ast.Name)
        and f.value.id
        in (
            "log",
            "logger",
            "access_log",
        )
    )


def _is_string_concat(node: ast.BinOp) -> bool:
    return any(
        isinstance(side, ast.Constant | ast.JoinedStr)
        and isinstance(getattr(side, "value", ""), str)
        for side in (node.left, node.right)
    )


def generate(module: str) -> list[Mutant]:
    path = ROOT / module
    source = path.read_text()
    tree = ast.parse(source)
    collector = _Collector(source)
    collector.visit(tree)
    mutants: list[Mutant] = []
    seen: Counter[str] = Counter()
    for node, qualname, operator, new in collector.found:
        original = ast.get_source_segment(source, node) or ""
        if not original or original == new:
            continue
        base = f"{module}::{qualname}::{operator}::{' '.join(original.split())} => {new}"
        seen[base] += 1
        ident = base if seen[base] == 1 else f"{base} #{seen[base]}"
        mutants.append(
            Mutant(
                ident,
                module,
                node.lineno,  # type: ignore[attr-defined]
                operator,
                original,
                new,
                (node.lineno, node.col_offset),  # type: ignore[attr-defined]
                (node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
            )
        )
    return mutants


def apply(source: str, mutant: Mutant) -> str | None:
    """The module's source with ``mutant`` applied, or None when that does not compile."""
    lines = source.splitlines(keepends=True)
    (l1, c1), (l2, c2) = mutant.start, mutant.end
    first = lines[l1 - 1].encode()
    last = lines[l2 - 1].encode()
    prefix = first[:c1].decode()
    suffix = last[c2:].decode()
    new_lines = [*lines[: l1 - 1], prefix + mutant.mutated + suffix, *lines[l2:]]
    mutated = "".join(new_lines)
    try:
        compile(mutated, mutant.module, "exec")
    except SyntaxError:
        return None
    return mutated


# -- running --------------------------------------------------------------------------------------


def _copy_tree(dest: Path) -> None:
    for d in COPY_DIRS:
        shutil.copytree(ROOT / d, dest / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for f in COPY_FILES:
        shutil.copy2(ROOT / f, dest / f)
    # Byte-compiled once here (the runs write none): each run then compiles only the module under
    # mutation, whose source is newer than its .pyc while a mutant (or the restored original) is
    # in place, so a stale .pyc is never used.
    compileall.compile_dir(dest, quiet=1)


def _env(tree: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    return env


def _pytest(tree: Path, args: list[str], timeout: int) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
           # Plugins the focused tests never use cost a second or more at every start.
           *(f"-pno:{p}" for p in UNUSED_PLUGINS),
           "-m", "not processes", "--timeout", "60", *args]  # fmt: skip
    try:
        proc = subprocess.run(  # noqa: S603 - our interpreter, pytest and our node ids
            cmd, cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    return proc.returncode, proc.stdout[-2000:]


def covering_tests(tree: Path, module: str, tests: list[str]) -> dict[int, list[str]]:
    """Line of ``module`` -> the focused tests that executed it (one coverage run)."""
    data_file = tree / ".coverage.mutate"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not processes",
           # The package directory, not the module's dotted name: naming a module makes
           # coverage import it early, which breaks SQLAlchemy's compiled extensions.
           f"--cov={tree / module.split('/')[0]}", "--cov-context=test",
           "--cov-report=", *tests]  # fmt: skip
    env = {**_env(tree), "COVERAGE_FILE": str(data_file)}
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)  # noqa: S603
    if proc.returncode != 0:
        raise SystemExit(f"the focused tests fail without any mutant:\n{proc.stdout[-3000:]}")
    db = sqlite3.connect(data_file)
    rows = db.execute(
        "SELECT line_bits.numbits, context.context FROM line_bits "
        "JOIN file ON file.id = line_bits.file_id JOIN context ON context.id = line_bits.context_id "
        "WHERE file.path LIKE ?",
        (f"%{module}",),
    ).fetchall()
    from coverage.numbits import numbits_to_nums

    by_line: dict[int, set[str]] = {}
    for bits, context in rows:
        test = context.rsplit("|", 1)[0]
        for line in numbits_to_nums(bits):
            by_line.setdefault(line, set()).add(test)
    return {line: sorted(t for t in tests_ if t) for line, tests_ in by_line.items()}


@dataclass
class Result:
    id: str
    line: int
    status: str  # killed | survived | timeout | invalid | equivalent | uncovered
    seconds: float


def run_module(
    module: str, jobs: int, only: str | None = None, earlier: dict[str, Result] | None = None
) -> list[Result]:
    tests = TARGETS[module]
    mutants = generate(module)
    if only:
        mutants = [m for m in mutants if only in m.id]
    kept: list[Result] = []
    if earlier:
        # A second run (another backend: REDIS_URL, DATABASE_URL) tries only what survived the
        # first; a mutant killed in either is killed.
        kept = [earlier[m.id] for m in mutants if m.id in earlier and earlier[m.id].status
                not in ("survived", "uncovered")]  # fmt: skip
        mutants = [m for m in mutants if m.id not in {r.id for r in kept}]
    equivalent = load_equivalents()
    source = (ROOT / module).read_text()
    work = Path(tempfile.mkdtemp(prefix="mutate-"))
    try:
        trees = []
        for i in range(jobs):
            tree = work / f"tree{i}"
            _copy_tree(tree)
            trees.append(tree)
        print(f"{module}: {len(mutants)} mutants; measuring which tests cover which line ...",
              flush=True)  # fmt: skip
        cover = covering_tests(trees[0], module, tests)
        module_level = _ordered({t for ts in cover.values() for t in ts}, tests)
        cover = {line: _ordered(set(ts), tests) for line, ts in cover.items()}
        module_lines = _module_lines(source)
        starts = _statement_starts(source)

        def one(args: tuple[int, Mutant]) -> Result:
            i, mutant = args
            if mutant.id in equivalent:
                return Result(mutant.id, mutant.line, "equivalent", 0.0)
            mutated = apply(source, mutant)
            if mutated is None:
                return Result(mutant.id, mutant.line, "invalid", 0.0)
            # A constant on a statement's continuation line: coverage may record only the
            # statement's first line.
            selected = cover.get(mutant.line) or cover.get(starts.get(mutant.line, 0))
            if not selected and mutant.line in module_lines:
                # Module-level lines run at import, outside any test: every covering test.
                selected = module_level
            if not selected:
                return Result(mutant.id, mutant.line, "uncovered", 0.0)
            tree = trees[i % jobs]
            (tree / module).write_text(mutated)
            started = time.monotonic()
            try:
                code, _ = _pytest(tree, selected, TIMEOUT)
            finally:
                (tree / module).write_text(source)
            elapsed = time.monotonic() - started
            status = "timeout" if code == -1 else ("survived" if code == 0 else "killed")
            return Result(mutant.id, mutant.line, status, round(elapsed, 1))

        # One tree per job: mutants are dealt out so that no two run in one tree at once.
        results: list[Result] = []
        batches = [list(enumerate(mutants))[k::jobs] for k in range(jobs)]

        def run_batch(batch: list[tuple[int, Mutant]]) -> list[Result]:
            out = []
            for item in batch:
                r = one(item)
                out.append(r)
                if r.status in ("survived", "uncovered"):
                    print(f"  {r.status}: {r.id} (line {r.line})", flush=True)
            return out

        results.extend(kept)
        with ThreadPoolExecutor(jobs) as pool:
            for out in pool.map(run_batch, batches):
                results.extend(out)
        return sorted(results, key=lambda r: r.line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ordered(node_ids: set[str], files: list[str]) -> list[str]:
    """Tests in the order of the target's files (a module's own unit tests first: they fail
    fastest), then by name."""

    def rank(node_id: str) -> tuple[int, str]:
        path = node_id.split("::", 1)[0]
        return (files.index(path) if path in files else len(files), node_id)

    return sorted(node_ids, key=rank)


def _module_lines(source: str) -> set[int]:
    """Lines outside any function body: run once, at import."""
    tree = ast.parse(source)
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in node.body:
                inside.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return set(range(1, len(source.splitlines()) + 1)) - inside


def _statement_starts(source: str) -> dict[int, int]:
    """Line -> the first line of the innermost statement that spans it."""
    starts: dict[int, int] = {}

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                starts[line] = node.lineno  # inner statements, visited later, take their lines
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return starts


def load_equivalents() -> set[str]:
    if not EQUIVALENT.exists():
        return set()
    ids = set()
    for line in EQUIVALENT.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        ident, _, reason = line.partition("  # ")
        if not reason.strip():
            raise SystemExit(f"{EQUIVALENT}: every equivalent mutant needs a reason: {line!r}")
        ids.add(ident.strip())
    return ids


def summarise(module: str, results: list[Result]) -> dict[str, object]:
    counts = Counter(r.status for r in results)
    scored = counts["killed"] + counts["timeout"] + counts["survived"] + counts["uncovered"]
    killed = counts["killed"] + counts["timeout"]
    return {
        "module": module,
        "mutants": len(results),
        "killed": killed,
        "survived": counts["survived"] + counts["uncovered"],
        "equivalent": counts["equivalent"],
        "invalid": counts["invalid"],
        "score": round(100 * killed / scored, 1) if scored else 100.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module paths, e.g. grants/dpop.py")
    parser.add_argument("--all", action="store_true", help="every module in targets.py")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", help="only mutants whose id contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--report", help="write every result as JSON to this file")
    parser.add_argument("--resume-from", metavar="REPORT",
                        help="an earlier --report: run only its survivors (e.g. again with "
                        "REDIS_URL set, for the Redis branches), keep the rest")  # fmt: skip
    args = parser.parse_args(argv)
    earlier: dict[str, dict[str, Result]] = {}
    if args.resume_from:
        for module, data in json.loads(Path(args.resume_from).read_text()).items():
            earlier[module] = {r["id"]: Result(**r) for r in data["results"]}
    modules = list(TARGETS) if args.all else args.modules
    unknown = [m for m in modules if m not in TARGETS]
    if not modules or unknown:
        parser.error(f"choose modules among: {', '.join(TARGETS)}")
    if args.list:
        for module in modules:
            for m in generate(module):
                print(f"{m.line:5} {m.id}")
        return 0
    report: dict[str, object] = {}
    summaries = []
    for module in modules:
        results = run_module(module, args.jobs, args.only, earlier.get(module))
        summary = summarise(module, results)
        summaries.append(summary)
        report[module] = {"summary": summary, "results": [asdict(r) for r in results]}
        print(json.dumps(summary), flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1))
    print("\n| module | mutants | killed | survived | equivalent | score |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for s in summaries:
        print(f"| `{s['module']}` | {s['mutants']} | {s['killed']} | {s['survived']} | "
              f"{s['equivalent']} | {s['score']}% |")  # fmt: skip
    return 0


def iter_ids(module: str) -> Iterator[str]:
    for m in generate(module):
        yield m.id


if __name__ == "__main__":
    raise SystemExit(main())
