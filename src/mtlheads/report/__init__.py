"""Reporting: collect run outputs, tables (Markdown, LaTeX, plain text) and figures."""
