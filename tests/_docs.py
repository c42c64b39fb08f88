"""The examples of README.md and docs/*.md: fenced ``cnnlab ...`` commands and Python blocks, with where
they are (shared by test_cli_docs.py, which parses every command, and test_docs_run.py, which runs them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def doc_files() -> list[Path]:
    """README first, then the guides in name order (the order the docs runner follows)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Example:
    doc: str      # README.md, training.md, ...
    line: int
    text: str     # the command line (continuations joined) or the Python code
    kind: str     # "command", "inline" (a `cnnlab ...` in prose), "python" or "file" (a shell here-document:
                  # text = "NAME\nCONTENT", the file the commands after it read)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def examples(md: Path) -> list[Example]:
    """Every example of one markdown file, in order."""
    found: list[Example] = []
    in_code, lang, buf, start, code_lines = False, "", "", 0, []
    heredoc: tuple[str, str, int, list[str]] | None = None   # (file name, end word, line, lines so far)
    for i, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if heredoc is not None:
            name, end, first, lines = heredoc
            if stripped == end:
                found.append(Example(md.name, first, name + "\n" + "\n".join(lines) + "\n", "file"))
                heredoc = None
            else:
                lines.append(line)
            continue
        m = re.fullmatch(r"cat > (\S+) <<-?'?(\w+)'?", stripped) if in_code and lang != "python" else None
        if m:
            heredoc = (m.group(1), m.group(2), i, [])
            continue
        if stripped.startswith("```"):
            if in_code and lang == "python" and code_lines:
                found.append(Example(md.name, start, "\n".join(code_lines), "python"))
            in_code, buf = not in_code, ""
            lang, code_lines, start = (stripped[3:].strip() if in_code else ""), [], i + 1
            continue
        if not in_code:
            found += [Example(md.name, i, m.group(1), "inline") for m in re.finditer(r"`(cnnlab [^`]+)`", line)]
            continue
        if lang == "python":
            code_lines.append(line)
            continue
        if not (buf or stripped.startswith("cnnlab ")):
            continue
        if not buf:
            start = i
        buf = f"{buf} {stripped}".strip()
        if buf.endswith("\\"):
            buf = buf[:-1]
            continue
        found.append(Example(md.name, start, buf, "command"))
        buf = ""
    return found


def all_examples() -> list[Example]:
    return [e for md in doc_files() for e in examples(md)]
