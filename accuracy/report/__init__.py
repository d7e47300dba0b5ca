"""Reports people look at: one self-contained HTML page (``render_report`` / ``write_report``) and
the pictures in it (``accuracy.report.pictures``). See ``accuracy.report.html`` for the section API."""

from __future__ import annotations

from accuracy.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
