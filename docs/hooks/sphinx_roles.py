"""MkDocs hook: the docstrings use Sphinx roles (``:mod:`risk.formulas```), which mkdocstrings
renders literally as ``:mod:<code>risk.formulas</code>``; drop the role, keep the code."""

import re

ROLE = re.compile(r":(?:py:)?(?:mod|func|class|data|meth|attr|exc|obj|const):(?=<code)")


def on_page_content(html, page, config, files):
    return ROLE.sub("", html)
