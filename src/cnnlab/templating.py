"""Pages from packaged Jinja2 templates (``<package>/templates``): HTML autoescaped, undefined names fail."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=8)
def environment(package: str) -> Any:
    """The Jinja2 environment of ``package``'s ``templates`` folder (cached)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader(package, "templates"),
                              autoescape=jinja2.select_autoescape(("html", "j2")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render(package: str, name: str, **context: Any) -> str:
    """Render template ``name`` of ``package`` (every value is HTML-escaped unless marked safe)."""
    return environment(package).get_template(name).render(**context)


def source(package: str, name: str) -> str:
    """The raw text of a packaged template file (e.g. a stylesheet to inline)."""
    env = environment(package)
    return env.loader.get_source(env, name)[0]
