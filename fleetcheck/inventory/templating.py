"""Inventory values such as `{{ inventory_hostname }}.corp.example.com`, rendered as Ansible would.

jinja2's sandboxed environment with native types (`{{ 5985 }}` stays a number), over the host's
own variables plus `inventory_hostname`, `group_names` and `groups`. A variable that refers to
another templated variable is rendered on access, to a bounded depth. What needs Ansible itself
(lookup/query, filters and tests from collections) raises `NeedsAnsible` naming it; the caller
leaves that value out and says so once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate, native_concat
from jinja2.sandbox import SandboxedEnvironment

from fleetcheck.inventory.sources.base import is_template

MAX_DEPTH = 20
MAX_RESULT = 64 * 1024


class NeedsAnsible(Exception):
    """The template uses something only Ansible provides; `what` names it."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _NativeSandbox(SandboxedEnvironment):
    """SandboxedEnvironment that keeps native Python types, as Ansible's templating does.

    `*` and `**` are checked so `{{ 'x' * 10**10 }}` is refused instead of filling memory.
    """

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(native_concat)  # type: ignore[assignment]
    template_class = NativeTemplate
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 256:
            raise SecurityError("exponent too large")
        if operator == "*":
            sizes = [len(x) for x in (left, right) if isinstance(x, str | list | tuple)]
            counts = [x for x in (left, right) if isinstance(x, int)]
            if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_RESULT:
                raise SecurityError(f"repetition longer than {MAX_RESULT}")
        return super().call_binop(context, operator, left, right)


def _bool(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "on", "1", "y", "t")


def _regex_replace(value: Any, pattern: str = "", replacement: str = "", ignorecase: bool = False) -> str:
    return re.sub(pattern, replacement, str(value), flags=re.IGNORECASE if ignorecase else 0)


def _lookup(name: str, *args: Any, **kwargs: Any) -> Any:
    raise NeedsAnsible(f"lookup('{name}')")


def _env() -> _NativeSandbox:
    env = _NativeSandbox(undefined=StrictUndefined, autoescape=False)
    env.filters.update({"bool": _bool, "regex_replace": _regex_replace, "to_json": json.dumps,
                        "string": str, "int": int})
    env.globals.update({"lookup": _lookup, "query": _lookup, "q": _lookup})
    return env


ENV = _env()


class HostContext(Mapping[str, Any]):
    """A host's variables for templates: nested templates render on access (bounded depth)."""

    def __init__(self, values: Mapping[str, Any], magic: Mapping[str, Any], depth: int = 0) -> None:
        self.data = values
        self.magic = magic
        self.depth = depth

    def __getitem__(self, key: str) -> Any:
        if key in self.magic:
            return self.magic[key]
        if key not in self.data and key in ENV.globals:
            return ENV.globals[key]
        value = self.data[key]
        if is_template(value):
            return render(value, self.data, self.magic, self.depth + 1)
        return value

    def __iter__(self) -> Iterator[str]:
        yield from self.magic
        yield from (k for k in self.data if k not in self.magic)

    def __len__(self) -> int:
        return len(set(self.data) | set(self.magic))


def render(text: str, values: Mapping[str, Any], magic: Mapping[str, Any], depth: int = 0) -> Any:
    """Render one value; raises NeedsAnsible, or ValueError with a short reason."""
    if depth > MAX_DEPTH:
        raise ValueError(f"templates refer to each other more than {MAX_DEPTH} levels deep (a loop?)")
    if "{%" in text:
        raise ValueError("template statements ({% ... %}) are not run in inventory values; use an expression")
    if len(text) > MAX_RESULT:
        raise ValueError(f"template longer than {MAX_RESULT} characters")
    try:
        template = ENV.from_string(text)
    except TemplateError as exc:
        missing = re.search(r"No (filter|test) named '([^']+)'", str(exc))
        if missing:
            raise NeedsAnsible(f"{missing.group(1)} '{missing.group(2)}'") from None
        raise ValueError(f"template syntax error: {exc}") from None
    context = HostContext(values, magic, depth)
    try:
        # shared=True: the context reads names from our lazy mapping instead of copying every variable
        result = native_concat(template.root_render_func(template.new_context(_Lazy(context), shared=True)))
        if isinstance(result, Undefined):
            str(result)  # StrictUndefined raises UndefinedError with jinja2's own message
            raise ValueError("renders to an undefined value")
    except NeedsAnsible:
        raise
    except UndefinedError as exc:
        raise ValueError(f"{exc.message}") from None
    except TemplateError as exc:
        missing = re.search(r"No (filter|test) named '([^']+)'", str(exc))
        if missing:
            raise NeedsAnsible(f"{missing.group(1)} '{missing.group(2)}'") from None
        raise ValueError(str(exc)) from None
    except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    if isinstance(result, str) and len(result) > MAX_RESULT:
        raise ValueError(f"renders to more than {MAX_RESULT} characters")
    return result


class _Lazy(dict[str, Any]):
    """A dict view jinja2 can take as its context, fetching (and rendering) keys on demand."""

    def __init__(self, context: HostContext) -> None:
        super().__init__()
        self.context = context

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (
            key in self.context.magic or key in self.context.data or key in ENV.globals
        )

    def __getitem__(self, key: str) -> Any:
        return self.context[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.context[key] if key in self else default

    def keys(self) -> Any:
        return list(self.context)
