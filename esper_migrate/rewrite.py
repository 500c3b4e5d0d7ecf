"""One libcst pass per file applies the planned edits, copying the neighbours' whitespace.

Edits are located by position (libcst's PositionProvider, the same spans the planner took from
``ast``). The result is re-parsed before it is returned; writing it is
:mod:`esper_migrate.safe_write`'s job.
"""

from __future__ import annotations

import ast
import codecs
import io
import tokenize
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from esper_migrate.records import Edit, EditKind, Span


class RewriteError(Exception):
    """The planned edits could not be applied (the file is left as it was)."""


def _span(pos: CodeRange) -> Span:
    return (pos.start.line, pos.start.column, pos.end.line, pos.end.column)


_ParamItem = cst.Param | cst.ParamStar | cst.ParamSlash
_Item = TypeVar("_Item", cst.Arg, _ParamItem)


def _separator(previous_ws: cst.BaseParenthesizableWhitespace | None) -> cst.Comma:
    if previous_ws is None:
        return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return cst.Comma(whitespace_after=previous_ws)


def _clean(comma: cst.Comma | cst.MaybeSentinel) -> cst.Comma | cst.MaybeSentinel:
    """The anchor's separator for the new element: same layout, without the anchor's trailing
    comment or the comment lines that belong to the next element."""
    if not isinstance(comma, cst.Comma):
        return comma
    ws = comma.whitespace_after
    if isinstance(ws, cst.ParenthesizedWhitespace):
        ws = ws.with_changes(
            first_line=cst.TrailingWhitespace(newline=ws.first_line.newline), empty_lines=[]
        )
    return comma.with_changes(whitespace_after=ws)


def insert_after(
    items: Sequence[_Item],
    k: int,
    new: _Item,
    opening_ws: cst.BaseParenthesizableWhitespace | None,
) -> list[_Item]:
    """``items`` with ``new`` right after ``items[k]``, separated like the neighbours are."""
    out = list(items)
    anchor = out[k]
    last = k == len(out) - 1
    anchor_comma = anchor.comma
    new_item = new.with_changes(comma=_clean(anchor_comma))
    # The separator between the anchor and the new item copies the one before the anchor.
    before = out[k - 1].comma if k > 0 else None
    before_ws = before.whitespace_after if isinstance(before, cst.Comma) else None
    if last and isinstance(anchor_comma, cst.Comma):
        # A trailing comma before the closing paren: with no comma before the anchor, the
        # whitespace after the paren stands in.
        sep = next(
            (ws for ws in (before_ws, opening_ws) if ws is not None), cst.SimpleWhitespace(" ")
        )
        out[k] = anchor.with_changes(
            comma=cst.Comma(whitespace_before=anchor_comma.whitespace_before, whitespace_after=sep)
        )
    elif not isinstance(anchor_comma, cst.Comma):
        out[k] = anchor.with_changes(comma=_separator(before_ws))
    out.insert(k + 1, new_item)
    return out


def insert_at(
    items: Sequence[_Item],
    k: int,
    new: _Item,
    opening_ws: cst.BaseParenthesizableWhitespace | None,
) -> list[_Item]:
    """``items`` with ``new`` at index ``k``, separated like the neighbours are."""
    if k > 0:
        return insert_after(items, k - 1, new, opening_ws)
    out = list(items)
    if not out:
        return [new.with_changes(comma=cst.MaybeSentinel.DEFAULT)]
    head = out[0].comma
    if len(out) > 1 and isinstance(head, cst.Comma):
        sep = head.whitespace_after  # the separator between the first two
    elif opening_ws is not None:
        sep = opening_ws  # one per line: the new first line is indented like the old one
    else:
        sep = cst.SimpleWhitespace(" ")
    out.insert(0, new.with_changes(comma=_clean(cst.Comma(whitespace_after=sep))))
    return out


class _Rewriter(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, edits: Sequence[Edit]) -> None:
        super().__init__()
        self.by_anchor: dict[tuple[EditKind, Span], list[Edit]] = {}
        self.defs: dict[tuple[int, int], list[Edit]] = {}
        self.statements: dict[tuple[int, int], list[Edit]] = {}
        for e in edits:
            if e.kind is EditKind.PARAMETER:
                self.defs.setdefault(e.anchor[:2], []).append(e)
            elif e.kind is EditKind.STATEMENT:
                self.statements.setdefault(e.anchor[:2], []).append(e)
            else:
                self.by_anchor.setdefault((e.kind, e.anchor), []).append(e)
        self.applied = 0

    def _edits(self, kind: EditKind, node: cst.CSTNode) -> list[Edit]:
        return self.by_anchor.get((kind, _span(self.get_metadata(PositionProvider, node))), [])

    # -- parameters ----------------------------------------------------------------------

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        pos = self.get_metadata(PositionProvider, original_node)
        edits = self.defs.get((pos.start.line, pos.start.column), [])
        for e in edits:
            annotation = (
                cst.Annotation(cst.parse_expression(e.extra)) if e.extra is not None else None
            )
            new = cst.Param(name=cst.Name(e.text), annotation=annotation)
            if e.default is not None:
                # PEP 8: spaces around = only when the parameter is annotated.
                space = cst.SimpleWhitespace(" " if annotation is not None else "")
                new = new.with_changes(
                    default=cst.parse_expression(e.default),
                    equal=cst.AssignEqual(whitespace_before=space, whitespace_after=space),
                )
            params = _with_param(
                updated_node.params, e, new, _opening(updated_node.whitespace_before_params)
            )
            updated_node = updated_node.with_changes(params=params)
            self.applied += 1
        return updated_node

    def leave_SimpleString(
        self, original_node: cst.SimpleString, updated_node: cst.SimpleString
    ) -> cst.SimpleString:
        for e in self._edits(EditKind.DOCSTRING, original_node):
            updated_node = updated_node.with_changes(value=e.text)
            self.applied += 1
        return updated_node

    # -- calls, dicts, names -------------------------------------------------------------

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        for e in self._edits(EditKind.ARGUMENT, original_node):
            args = updated_node.args
            if e.first or (e.after is None and not args):
                k = -1  # the first argument (or the only one)
            elif e.after is None:
                k = len(args) - 1  # a keyword after every argument (``**kw`` included)
            elif isinstance(e.after, int):
                k = e.after
            else:
                keys = [a.keyword.value if a.keyword else None for a in args]
                if e.after not in keys:
                    raise RewriteError(f"line {e.line}: no argument `{e.after}`")
                k = keys.index(e.after)
            value = cst.parse_expression(e.text)
            if e.positional:
                new = cst.Arg(value=value)
            else:
                new = cst.Arg(
                    value=value,
                    keyword=cst.Name(_param_name(e)),
                    equal=cst.AssignEqual(
                        whitespace_before=cst.SimpleWhitespace(""),
                        whitespace_after=cst.SimpleWhitespace(""),
                    ),
                )
            updated_node = updated_node.with_changes(
                args=insert_at(args, k + 1, new, _opening(updated_node.whitespace_before_args))
            )
            self.applied += 1
        return updated_node

    def leave_Dict(self, original_node: cst.Dict, updated_node: cst.Dict) -> cst.Dict:
        for e in self._edits(EditKind.DICT_ENTRY, original_node):
            elements = list(updated_node.elements)
            keys = [
                el.key.value
                if isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString)
                else None
                for el in elements
            ]
            if e.after not in keys:
                raise RewriteError(f"line {e.line}: no key {e.after}")
            k = keys.index(str(e.after))
            anchor = elements[k]
            assert isinstance(anchor, cst.DictElement) and e.extra is not None
            new = cst.DictElement(
                key=cst.parse_expression(e.extra),
                value=cst.parse_expression(e.text),
                whitespace_before_colon=anchor.whitespace_before_colon,
                whitespace_after_colon=anchor.whitespace_after_colon,
            )
            updated_node = updated_node.with_changes(
                elements=_insert_element(elements, k, new, updated_node.lbrace.whitespace_after)
            )
            self.applied += 1
        return updated_node

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        for e in self._edits(EditKind.RENAME, original_node):
            updated_node = updated_node.with_changes(value=e.text)
            self.applied += 1
        return updated_node

    # -- statements ----------------------------------------------------------------------

    def _with_inserts(
        self, original: Sequence[cst.BaseStatement], updated: Sequence[cst.BaseStatement]
    ) -> list[cst.BaseStatement]:
        out: list[cst.BaseStatement] = []
        for orig, upd in zip(original, updated, strict=True):
            out.append(upd)
            if not isinstance(orig, cst.SimpleStatementLine):
                continue
            for small in orig.body:
                pos = self.get_metadata(PositionProvider, small)
                for e in self.statements.get((pos.start.line, pos.start.column), []):
                    stmt = cst.parse_statement(e.text)
                    out.append(stmt)
                    self.applied += 1
        return out

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        if not self.statements:
            return updated_node
        return updated_node.with_changes(
            body=self._with_inserts(original_node.body, updated_node.body)
        )

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if not self.statements:
            return updated_node
        return updated_node.with_changes(
            body=self._with_inserts(original_node.body, updated_node.body)
        )


def _param_name(e: Edit) -> str:
    # The keyword of an ARGUMENT edit is the parameter's name, carried in ``extra``.
    if e.extra is None:
        raise RewriteError(f"line {e.line}: keyword argument without a name")
    return e.extra


def _opening(ws: object) -> cst.BaseParenthesizableWhitespace | None:
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return ws
    return None


#: The items of a parameter list in source order, each with the group it belongs to.
_Flat = list[tuple[str, "_ParamItem"]]


def _flatten(params: cst.Parameters) -> _Flat:
    flat: _Flat = [("posonly", p) for p in params.posonly_params]
    if isinstance(params.posonly_ind, cst.ParamSlash):
        flat.append(("slash", params.posonly_ind))
    flat.extend(("params", p) for p in params.params)
    if isinstance(params.star_arg, cst.Param | cst.ParamStar):
        flat.append(("star", params.star_arg))
    flat.extend(("kwonly", p) for p in params.kwonly_params)
    if isinstance(params.star_kwarg, cst.Param):
        flat.append(("star_kwarg", params.star_kwarg))
    return flat


def _unflatten(params: cst.Parameters, flat: _Flat) -> cst.Parameters:
    def group(name: str) -> list[cst.Param]:
        return [item for g, item in flat if g == name and isinstance(item, cst.Param)]

    def single(name: str) -> _ParamItem | cst.MaybeSentinel:
        found = [item for g, item in flat if g == name]
        return found[0] if found else cst.MaybeSentinel.DEFAULT

    star = single("star")
    star_kwarg = single("star_kwarg")
    slash = single("slash")
    assert not isinstance(star, cst.ParamSlash)
    assert isinstance(slash, cst.ParamSlash | cst.MaybeSentinel)
    return params.with_changes(
        posonly_params=group("posonly"),
        posonly_ind=slash,
        params=group("params"),
        star_arg=star,
        kwonly_params=group("kwonly"),
        star_kwarg=star_kwarg if isinstance(star_kwarg, cst.Param) else None,
    )


def _with_param(
    params: cst.Parameters,
    e: Edit,
    new: cst.Param,
    opening_ws: cst.BaseParenthesizableWhitespace | None,
) -> cst.Parameters:
    """``params`` with ``new`` where the edit places it: right after the parameter ``after``
    (past the ``/`` when that one is the last positional-only parameter), first of the
    positional ones, or among the keyword-only ones (first after ``*``/``*args``, after
    ``after``, a bare ``*`` added when there is neither)."""
    flat = _flatten(params)
    names = [item.name.value if isinstance(item, cst.Param) else None for _, item in flat]
    groups = [g for g, _ in flat]
    added: list[tuple[str, _ParamItem]] = [("kwonly" if e.keyword_only else "params", new)]
    if e.after is not None:
        if e.after not in names:
            raise RewriteError(f"line {e.line}: no parameter `{e.after}`")
        k = names.index(str(e.after))
        if groups[k] == "posonly":
            if k + 1 < len(flat) and groups[k + 1] == "posonly":
                raise RewriteError(f"line {e.line}: `{e.after}` is positional-only")
            k += 1  # past the ``/``
        at = k + 1
    elif e.keyword_only:
        if "star" in groups:
            at = groups.index("star") + 1
        else:
            at = groups.index("star_kwarg") if "star_kwarg" in groups else len(flat)
            added.insert(0, ("star", cst.ParamStar()))
    else:
        later = [i for i, g in enumerate(groups) if g not in ("posonly", "slash")]
        at = later[0] if later else len(flat)
    items = [item for _, item in flat]
    for offset, (_, item) in enumerate(added):
        items = insert_at(items, at + offset, item, opening_ws)
    tagged = [*flat[:at], *added, *flat[at:]]
    return _unflatten(params, [(g, item) for (g, _), item in zip(tagged, items, strict=True)])


def _insert_element(
    elements: list[cst.BaseDictElement],
    k: int,
    new: cst.DictElement,
    opening_ws: object,
) -> list[cst.BaseDictElement]:
    out = list(elements)
    anchor = out[k]
    comma = anchor.comma
    new = new.with_changes(comma=_clean(comma))
    if k == len(out) - 1 and isinstance(comma, cst.Comma):
        previous = out[k - 1].comma if k > 0 else None
        sep = (
            previous.whitespace_after
            if isinstance(previous, cst.Comma)
            else (_opening(opening_ws) or cst.SimpleWhitespace(" "))
        )
        out[k] = anchor.with_changes(
            comma=cst.Comma(whitespace_before=comma.whitespace_before, whitespace_after=sep)
        )
    elif not isinstance(comma, cst.Comma):
        previous = out[k - 1].comma if k > 0 else None
        sep_ws = previous.whitespace_after if isinstance(previous, cst.Comma) else None
        out[k] = anchor.with_changes(comma=_separator(sep_ws))
    out.insert(k + 1, new)
    return out


def _transform(code: str, edits: Sequence[Edit]) -> str:
    module = cst.parse_module(code)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    rewriter = _Rewriter(edits)
    new_module = wrapper.visit(rewriter)
    if rewriter.applied != len(edits):
        raise RewriteError(
            f"{len(edits) - rewriter.applied} of {len(edits)} planned edits found no node"
        )
    return new_module.code


def _shift(edit: Edit, lines: int) -> Edit:
    # Only the anchor moves into the region's coordinates: ``line`` stays the file's line,
    # which is what error messages report.
    a = edit.anchor
    return replace(edit, anchor=(a[0] - lines, a[1], a[2] - lines, a[3]))


def apply_edits(
    source: bytes,
    edits: Sequence[Edit],
    regions: Sequence[tuple[int, int]] | None = None,
) -> bytes:
    """``source`` with the edits applied (same encoding, BOM and line endings).

    ``regions`` are disjoint (first line, last line) ranges of whole statements (a module-level
    statement or a method) that contain every edit: libcst parses only those (indented ones
    inside an ``if True:`` header), the rest of the file is never parsed. Without regions the
    whole file is one region. The result is re-parsed (``ast``) before it is returned.
    """
    if not edits:
        return source
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        text = source.decode(encoding)
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise RewriteError(f"cannot decode: {exc}") from None
    bom = source.startswith(codecs.BOM_UTF8)
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    spans = sorted(regions) if regions else [(1, len(lines))]
    groups: list[tuple[int, int, list[Edit]]] = [(a, b, []) for a, b in spans]
    for e in edits:
        group = next((g for g in groups if g[0] <= e.anchor[0] and e.anchor[2] <= g[1]), None)
        if group is None:
            raise RewriteError(f"line {e.line}: edit outside every region")
        group[2].append(e)
    for first, last, group_edits in reversed(groups):
        if not group_edits:
            continue
        chunk = "".join(lines[first - 1 : last])
        head = lines[first - 1]
        newline = "\r\n" if head.endswith("\r\n") else "\r" if head.endswith("\r") else "\n"
        indented = head[:1] in (" ", "\t")
        prefix = f"if True:{newline}" if indented else ""
        shift = first - 1 - (1 if indented else 0)
        try:
            out = _transform(prefix + chunk, [_shift(e, shift) for e in group_edits])
        except cst.ParserSyntaxError as exc:
            raise RewriteError(f"libcst cannot parse lines {first}-{last}: {exc}") from None
        lines[first - 1 : last] = [out[len(prefix) :]]
    new_text = "".join(lines)
    try:
        ast.parse(new_text)
    except SyntaxError as exc:  # never write a file that does not parse
        raise RewriteError(f"the rewritten file does not parse: {exc}") from None
    return (("\ufeff" if bom else "") + new_text).encode(encoding.removesuffix("-sig"))
