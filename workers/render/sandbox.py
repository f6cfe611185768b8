"""A Jinja2 sandbox for templates that dealers write, with real budgets.

Jinja2's own sandbox keeps templates away from Python internals but bounds neither memory nor
time: ``{% set x = x ~ x %}`` 24 times asks for 168 million characters, six nested loops run
for seconds, ``((10**64)**64)**64`` burns CPU, ``center(10**8)`` allocates hundreds of MB
before anything could object. Here every operation that can grow a value or take time is
checked *before* it runs and charged to a budget for the whole render:

- no calls at all except macros (filters do the formatting), no constant folding at compile
  time (it would run operations outside any budget);
- every intermediate value (concatenation, ``+``, ``*``, ``%``, every filter result) is at most
  ``MAX_VALUE`` characters or items, integers at most ``MAX_INT_BITS`` bits, format widths
  bounded; sizes are estimated before computing where Python would allocate first;
- the characters produced by all operations of one render add up to at most ``MAX_ALLOCATED``;
- loop iterations and macro calls together are at most ``MAX_STEPS``;
- wall time at most ``TIME_LIMIT`` seconds, checked at every step;
- the output is streamed and stops at ``MAX_OUTPUT`` bytes.
"""

from __future__ import annotations

import functools
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateError, nodes
from jinja2.runtime import Macro, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.utils import pass_eval_context
from jinja2.visitor import NodeTransformer

MAX_OUTPUT = 512 * 1024
MAX_VALUE = 512 * 1024
MAX_ALLOCATED = 8 * 1024 * 1024
MAX_INT_BITS = 4096
MAX_STEPS = 100_000
MAX_FORMAT_WIDTH = 10_000
TIME_LIMIT = 0.5


class TemplateRenderError(Exception):
    """A block failed to render; ``block`` names it (e.g. ``templates.default.intro.de``)."""

    def __init__(self, block: str, reason: str) -> None:
        super().__init__(f"{block}: {reason}")
        self.block = block
        self.reason = reason


class BudgetExceeded(SecurityError):
    pass


@dataclass
class Budget:
    deadline: float
    steps: int = MAX_STEPS
    allocated: int = 0
    notes: list[str] = field(default_factory=list)

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise BudgetExceeded(f"more than {MAX_STEPS} loop iterations and calls")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(f"rendering takes longer than {TIME_LIMIT} s")

    def charge(self, size: int) -> None:
        if size > MAX_VALUE:
            raise BudgetExceeded(f"a value of more than {MAX_VALUE} characters")
        self.allocated += size
        if self.allocated > MAX_ALLOCATED:
            raise BudgetExceeded(f"more than {MAX_ALLOCATED} characters computed in one render")
        self.step()


_BUDGET: ContextVar[Budget | None] = ContextVar("lms_template_budget", default=None)


def _budget() -> Budget:
    budget = _BUDGET.get()
    if budget is None:  # outside render(): nothing may run unbounded, so refuse
        raise BudgetExceeded("template code ran outside a budgeted render")
    return budget


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise BudgetExceeded(f"a number of more than {MAX_INT_BITS} bits")
        return 0
    return 0


def _checked(value: Any) -> Any:
    _budget().charge(_size(value))
    return value


_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_format(template: Any) -> None:
    """``'%0100000000d' % 1`` allocates 100 MB before returning: refuse wide specs first."""
    if not isinstance(template, str):
        return
    for width, precision in _FORMAT_SPEC.findall(template):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_FORMAT_WIDTH):
                raise BudgetExceeded(f"a format width over {MAX_FORMAT_WIDTH}")


def _estimate_binop(op: str, left: Any, right: Any) -> None:
    def length(value: Any) -> int | None:
        return len(value) if isinstance(value, str | list | tuple) else None

    if op == "**" and isinstance(left, int) and isinstance(right, int | float):
        if right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
            raise BudgetExceeded(f"a power this large is not allowed (more than {MAX_INT_BITS} bits)")
    elif op == "**" and isinstance(right, int | float) and abs(right) > 4096:
        raise BudgetExceeded("a power this large is not allowed in a template")
    elif op == "*":
        for seq, count in ((left, right), (right, left)):
            size = length(seq)
            if size is not None and isinstance(count, int) and size * count > MAX_VALUE:
                raise BudgetExceeded(f"repeating text to more than {MAX_VALUE} characters is not allowed")
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise BudgetExceeded(f"a number of more than {MAX_INT_BITS} bits")
    elif op == "+":
        sizes = (length(left), length(right))
        if None not in sizes and sum(s for s in sizes if s) > MAX_VALUE:
            raise BudgetExceeded(f"a value of more than {MAX_VALUE} characters")
    elif op == "%":
        _check_format(left)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses huge numeric arguments and format widths before it runs, and
    charges its result to the budget."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # Leading context/environment arguments (pass_context & co.), then the filtered value,
        # then the filter's own arguments: only those may not be huge numbers.
        values = [a for a in args if not hasattr(a, "environment") and not hasattr(a, "autoescape")]
        for arg in (*values[1:], *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_VALUE:
                raise BudgetExceeded(f"filter {name}: argument {arg} is too large")
        if name == "format" and values:
            _check_format(values[0])
        if name == "replace" and len(values) >= 3 and all(isinstance(v, str) for v in values[:3]):
            text, old, new = values[:3]
            grows = (text.count(old) if old else len(text) + 1) * max(len(new) - len(old), 0)
            if len(text) + grows > MAX_VALUE:
                raise BudgetExceeded(f"filter replace: the result would exceed {MAX_VALUE} characters")
        _budget().step()
        return _checked(func(*args, **kwargs))

    return guarded


class _LoopBudget(NodeTransformer):
    """Wraps the iterable of every ``for`` and every ``~`` concatenation in a budgeted filter."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        loop = self.generic_visit(node)
        assert isinstance(loop, nodes.For)
        loop.iter = nodes.Filter(loop.iter, "lms_budget_loop", [], [], None, None, lineno=loop.lineno)
        return loop

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        concat = self.generic_visit(node)
        assert isinstance(concat, nodes.Concat)
        parts = nodes.List(list(concat.nodes), lineno=concat.lineno)
        return nodes.Filter(parts, "lms_budget_concat", [], [], None, None, lineno=concat.lineno)


def _loop(iterable: Any) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


@pass_eval_context
def _concat(eval_ctx: Any, parts: Iterable[Any]) -> str:
    items = list(parts)
    _budget().charge(sum(_size(str(p)) for p in items))
    return markup_join(items) if eval_ctx.autoescape else str_join(items)


class StrictSandbox(SandboxedEnvironment):
    """Jinja2's sandbox, minus calls (macros excepted), with budgets (see the module)."""

    intercepted_binops = frozenset(_BINOPS)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("undefined", StrictUndefined)
        kwargs.setdefault("optimized", False)  # constant folding would run outside the budget
        super().__init__(**kwargs)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["lms_budget_loop"] = _loop
        self.filters["lms_budget_concat"] = _concat

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        template = super()._parse(source, name, filename)
        return _LoopBudget().visit(template)

    def is_safe_callable(self, obj: Any) -> bool:
        return isinstance(obj, Macro)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _budget().step()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        _estimate_binop(op, left, right)
        return _checked(_BINOPS[op](left, right))

    @functools.lru_cache(maxsize=512)  # noqa: B019 - environments live as long as the process
    def compiled(self, source: str) -> Any:
        """A dealer's block compiled once per distinct source (compiling costs far more than
        rendering)."""
        return self.from_string(source)


def render(
    env: StrictSandbox,
    block: str,
    ctx: dict[str, Any],
    *,
    source: str | None = None,
    file: str | None = None,
    time_limit: float = TIME_LIMIT,
) -> str:
    """Render a block (``source``) or a built-in template (``file``) within the budgets;
    :class:`TemplateRenderError` names the block and the reason for anything that fails."""
    budget = Budget(deadline=time.monotonic() + time_limit)
    token = _BUDGET.set(budget)
    try:
        template = env.compiled(source) if source is not None else env.get_template(str(file))
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(ctx):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateRenderError(block, f"renders to more than {MAX_OUTPUT} bytes")
            budget.step()
            chunks.append(chunk)
        rendered = "".join(chunks)
    except TemplateRenderError:
        raise
    except TemplateError as exc:  # SecurityError (budgets, calls) is one of these
        raise TemplateRenderError(block, f"{type(exc).__name__}: {exc}") from None
    except (ArithmeticError, ValueError, TypeError, MemoryError, RecursionError, AttributeError) as exc:
        raise TemplateRenderError(block, f"{type(exc).__name__}: {exc}") from None
    finally:
        _BUDGET.reset(token)
    if len(rendered.encode("utf-8")) > MAX_OUTPUT:
        raise TemplateRenderError(block, f"renders to more than {MAX_OUTPUT} bytes")
    return rendered


def make_env(loader: BaseLoader | None, *, autoescape: bool) -> StrictSandbox:
    env = StrictSandbox(loader=loader, autoescape=autoescape, keep_trailing_newline=False)
    env.filters["re_prefix"] = _guard_filter("re_prefix", _re_prefix)
    return env


def _re_prefix(subject: str, prefix: str = "Re") -> str:
    """``Re: subject`` unless it already carries a reply prefix (Re:, AW:, Antw:, RE:…)."""
    if re.match(r"^\s*(re|aw|antw|sv|wg|fw|fwd)\s*:", subject or "", re.I):
        return subject
    return f"{prefix}: {subject}"
