"""The emulated shell's lexer and parser: one command line in, a script out.

Supported: words with single/double quotes and backslashes (everything ``shlex.quote`` produces),
``$?``, ``$VAR``, ``${VAR}``, ``$(cmd)``, unquoted glob characters, ``NAME=value`` assignments,
pipelines ``|``, lists ``;`` ``&&`` ``||`` ``&`` and newlines, redirections ``>``, ``>>``, ``<``,
``N>``, ``N>&M``, ``&>``, comments. Compound commands, subshells, here-documents and backquotes
raise ``ShellSyntax`` naming the emulator. Expansion and execution are ``shell.py``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Command", "ShellSyntax", "lex", "parse"]

UNSUPPORTED = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case",
               "esac", "function", "select", "{", "}", "[[", "]]"}


_NO_BACKQUOTES = "syntax error: backquotes unsupported by the latkit emulator; use $(...)"


class ShellSyntax(Exception):
    """A command line this interpreter cannot parse (reported as ``sh: ...`` with status 2)."""


# --- lexer --------------------------------------------------------------------------------------
# A word is a list of parts (kind, text): "lit" unquoted literal (globbable), "q" quoted literal,
# "var"/"qvar" a variable name, "cmd"/"qcmd" a command substitution (q* = inside double quotes).


def _read_dollar(src: str, i: int, quoted: bool) -> tuple[tuple[str, str], int]:
    """Parse the expansion starting at ``src[i] == '$'``; returns (part, next index)."""
    n = len(src)
    j = i + 1
    if j < n and src[j] in "?$#!0123456789":
        return ("qvar" if quoted else "var", src[j]), j + 1
    if j < n and src[j] == "{":
        k = src.find("}", j)
        if k < 0:
            raise ShellSyntax("${ unmatched")
        return ("qvar" if quoted else "var", src[j + 1:k]), k + 1
    if j < n and src[j] == "(":
        depth, k, q = 1, j + 1, None
        while k < n and depth:
            c = src[k]
            if q:
                q = None if c == q else q
            elif c in "'\"":
                q = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            k += 1
        if depth:
            raise ShellSyntax("$( unmatched")
        return ("qcmd" if quoted else "cmd", src[j + 1:k - 1]), k
    k = j
    while k < n and (src[k].isalnum() or src[k] == "_"):
        k += 1
    if k == j:
        return ("q" if quoted else "lit", "$"), j
    return ("qvar" if quoted else "var", src[j:k]), k


def lex(src: str) -> list[tuple]:
    """Tokens: ("word", parts), ("op", text), ("redir", fd|None, op)."""
    tokens: list[tuple] = []
    parts: list[tuple[str, str]] = []
    i, n = 0, len(src)

    def flush() -> None:
        nonlocal parts
        if parts:
            tokens.append(("word", parts))
            parts = []

    def add(kind: str, text: str) -> None:
        if parts and parts[-1][0] == kind and kind in ("lit", "q"):
            parts[-1] = (kind, parts[-1][1] + text)
        else:
            parts.append((kind, text))

    while i < n:
        c = src[i]
        if c in " \t\r":
            flush()
            i += 1
        elif c == "#" and not parts:
            while i < n and src[i] != "\n":
                i += 1
        elif src.startswith("&>", i):
            flush()
            tokens.append(("redir", None, "&>"))
            i += 2
        elif c in ";&|\n":
            flush()
            two = src[i:i + 2]
            op = two if two in ("&&", "||", ";;") else c
            if op == ";;":
                raise ShellSyntax("syntax error: ';;' unexpected")
            tokens.append(("op", ";" if op == "\n" else op))
            i += len(op)
        elif c in "<>":
            fd = None
            if parts and len(parts) == 1 and parts[0][0] == "lit" and parts[0][1].isdigit():
                fd = int(parts[0][1])
                parts = []
            flush()
            op = src[i:i + 2] if src[i:i + 2] in (">>", ">&", "<&", "<<") else c
            if op == "<<":
                raise ShellSyntax("syntax error: here-documents unsupported by the latkit emulator")
            tokens.append(("redir", fd, op))
            i += len(op)
        elif c == "'":
            j = src.find("'", i + 1)
            if j < 0:
                raise ShellSyntax("syntax error: unterminated quoted string")
            add("q", src[i + 1:j])
            i = j + 1
        elif c == '"':
            i += 1
            start_len = len(parts)
            add("q", "")
            while True:
                if i >= n:
                    raise ShellSyntax("syntax error: unterminated quoted string")
                c = src[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and src[i + 1] in '\\"$`\n':
                    if src[i + 1] != "\n":
                        add("q", src[i + 1])
                    i += 2
                elif c == "$":
                    part, i = _read_dollar(src, i, quoted=True)
                    parts.append(part)
                elif c == "`":
                    raise ShellSyntax(_NO_BACKQUOTES)
                else:
                    add("q", c)
                    i += 1
            if len(parts) == start_len:
                parts.append(("q", ""))
        elif c == "\\":
            if i + 1 < n and src[i + 1] != "\n":
                add("q", src[i + 1])
            i += 2
        elif c == "$":
            part, i = _read_dollar(src, i, quoted=False)
            parts.append(part)
        elif c == "`":
            raise ShellSyntax(_NO_BACKQUOTES)
        elif c in "()":
            raise ShellSyntax(f"syntax error: '{c}' unsupported by the latkit emulator")
        else:
            add("lit", c)
            i += 1
    flush()
    return tokens


# --- parser -------------------------------------------------------------------------------------


@dataclass
class Command:
    words: list[list[tuple[str, str]]] = field(default_factory=list)
    redirs: list[tuple[int | None, str, list[tuple[str, str]]]] = field(default_factory=list)


def parse(tokens: list[tuple]) -> list[list[tuple[str | None, list[Command]]]]:
    """A script: a list of and-or lists; each is [(connector, pipeline)], connector None/&&/||."""
    script: list[list[tuple[str | None, list[Command]]]] = []
    andor: list[tuple[str | None, list[Command]]] = []
    pipeline: list[Command] = []
    cmd = Command()
    connector: str | None = None
    i = 0

    def end_command() -> None:
        nonlocal cmd
        if not cmd.words and not cmd.redirs:
            raise ShellSyntax("syntax error: missing command")
        first = cmd.words[0] if cmd.words else []
        if len(first) == 1 and first[0][0] == "lit" and first[0][1] in UNSUPPORTED:
            raise ShellSyntax(f"syntax error: '{first[0][1]}' unsupported by the latkit emulator")
        pipeline.append(cmd)
        cmd = Command()

    while i < len(tokens):
        tok = tokens[i]
        if tok[0] == "word":
            cmd.words.append(tok[1])
        elif tok[0] == "redir":
            if i + 1 >= len(tokens) or tokens[i + 1][0] != "word":
                raise ShellSyntax("syntax error: redirection needs a target")
            cmd.redirs.append((tok[1], tok[2], tokens[i + 1][1]))
            i += 1
        else:
            op = tok[1]
            if op == "|":
                end_command()
            else:
                if not cmd.words and not cmd.redirs and not pipeline:
                    if op in (";", "&") and not andor:
                        i += 1
                        continue
                    raise ShellSyntax(f"syntax error: '{op}' unexpected")
                end_command()
                andor.append((connector, pipeline))
                pipeline = []
                if op in ("&&", "||"):
                    connector = op
                else:
                    script.append(andor)
                    andor, connector = [], None
        i += 1
    if cmd.words or cmd.redirs or pipeline:
        end_command()  # raises on a dangling '|'
    if pipeline:
        andor.append((connector, pipeline))
    elif connector is not None:
        raise ShellSyntax("syntax error: unexpected end of file")
    if andor:
        script.append(andor)
    return script
