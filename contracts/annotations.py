"""Specs written in type annotations: ``x: Annotated[Tensor, "float32[b, n]"]`` or ``F32["b n"]``.

What an annotation can say (``S`` is an annotation carrying a spec):

- ``Annotated[T, spec]`` where ``spec`` is a spec string, a spec, or a ``TensorField``; the
  aliases (``F32["batch obs_dim"]``) are exactly this with ``T = Tensor``;
- ``S | None`` (or ``Optional[S]``), ``list[S]``, ``tuple[S, ...]``, ``tuple[S1, S2]`` and
  ``dict[str, S]``, nested as deep as specs nest.

An annotation without any spec in it (``int``, ``Tensor``, ``Hidden | None``) is not checked.
A spec inside anything else (``Sequence[S]``, ``Union[S1, S2]``) is an error at decoration,
naming what is supported.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

from contracts import aliases
from contracts.batch import TensorField
from contracts.dims import MAX_DEPTH
from contracts.spec import SPEC_TYPES, DictSpec, ListSpec, Spec, TupleSpec, spec

__all__ = ["specs_from_annotations"]

_SUPPORTED = (
    "Annotated[Tensor, 'spec'], an alias such as F32['batch n'], and around those "
    "X | None, list[X], tuple[X, ...], tuple[X, Y] and dict[str, X]"
)


_COULD_HOLD_SPEC = re.compile(r"['\"]|\bAnnotated\b|\b(?:" + "|".join(aliases.__all__) + r")\s*\[")


class AnnotationError(TypeError):
    pass


def _metadata_spec(meta: tuple[object, ...], where: str) -> Spec | None:
    found: list[Spec] = []
    for m in meta:
        if isinstance(m, (str, *SPEC_TYPES)):
            found.append(spec(m))
        elif isinstance(m, TensorField):
            found.append(m.spec)
    if len(found) > 1:
        raise AnnotationError(f"{where}: Annotated[...] holds {len(found)} specs; give one")
    return found[0] if found else None


def _mentions_spec(tp: object, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        return any(isinstance(m, (str, TensorField, *SPEC_TYPES)) for m in meta) or _mentions_spec(
            base, depth + 1
        )
    return any(_mentions_spec(a, depth + 1) for a in get_args(tp))


def _is_none(tp: object) -> bool:
    return tp is None or tp is type(None)


def _convert(tp: object, where: str, depth: int) -> Spec | None:
    """The spec an annotation carries, or None when it carries none."""
    if depth > MAX_DEPTH:
        raise AnnotationError(f"{where}: annotation nested more than {MAX_DEPTH} deep")
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        base, *meta = args
        own = _metadata_spec(tuple(meta), where)
        if own is None:
            return _convert(base, where, depth + 1)
        if _mentions_spec(base):
            raise AnnotationError(f"{where}: a spec both inside and on Annotated[...]")
        # ``Annotated[Tensor | None, "float32[n]"]``: the type already allows None.
        if get_origin(base) in (typing.Union, types.UnionType) and any(
            _is_none(a) for a in get_args(base)
        ):
            return own.or_none()
        return own
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if not _is_none(a)]
        if len(rest) == 1 and len(rest) < len(args):
            inner = _convert(rest[0], where, depth + 1)
            return None if inner is None else inner.or_none()
    elif origin is list and len(args) == 1:
        item = _convert(args[0], where, depth + 1)
        return None if item is None else ListSpec(item=item)
    elif origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _convert(args[0], where, depth + 1)
            return None if item is None else TupleSpec(items=(item,), variadic=True)
        items = [_convert(a, f"{where}[{i}]", depth + 1) for i, a in enumerate(args)]
        if all(i is None for i in items):
            return None
        missing = [str(i) for i, item in enumerate(items) if item is None]
        if missing:
            raise AnnotationError(
                f"{where}: tuple item(s) {', '.join(missing)} carry no spec; give every "
                "item one (use Shaped['...'] for any dtype)"
            )
        return TupleSpec(items=tuple(i for i in items if i is not None))
    elif origin is dict and len(args) == 2 and args[0] is str:
        values = _convert(args[1], where, depth + 1)
        return None if values is None else DictSpec(values=values)
    if _mentions_spec(tp):
        raise AnnotationError(
            f"{where}: {_show(tp)} is not supported around a spec; supported: {_SUPPORTED}"
        )
    return None


def _show(tp: object) -> str:
    origin = get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", repr(tp))
    return f"{getattr(origin, '__name__', repr(origin))}[...]"


def _resolve(fn: Callable[..., object], raw: object, where: str) -> object:
    """The annotation object; a string (``from __future__ import annotations``) evaluated."""
    if not isinstance(raw, str):
        return raw
    namespace: dict[str, Any] = dict(getattr(fn, "__globals__", {}))
    try:
        return eval(raw, namespace)
    except Exception as e:
        # A forward reference that cannot resolve yet (a TYPE_CHECKING import) is fine unless
        # it could hold a spec: a string inside it, Annotated, or one of the aliases.
        if _COULD_HOLD_SPEC.search(raw):
            raise AnnotationError(
                f"{where}: cannot read the annotation {raw!r} ({type(e).__name__}: {e}); "
                "define its names before the decorated function, or give the spec as a "
                "keyword of @contract"
            ) from None
        return None


def specs_from_annotations(
    fn: Callable[..., object], name: str
) -> tuple[dict[str, Spec], Spec | None]:
    """The specs in ``fn``'s parameter annotations, and in its return annotation."""
    try:
        raw = inspect.get_annotations(fn)
    except Exception:  # not a plain function (a builtin, a callable object): no annotations
        raw = getattr(fn, "__annotations__", {}) or {}
    out: dict[str, Spec] = {}
    returns: Spec | None = None
    for param, annotation in raw.items():
        where = f"contract for {name}: " + ("return annotation" if param == "return" else param)
        # An invalid spec string raises pydantic's ValidationError, as a keyword spec does.
        found = _convert(_resolve(fn, annotation, where), where, 0)
        if found is None:
            continue
        if param == "return":
            returns = found
        else:
            out[param] = found
    return out, returns
