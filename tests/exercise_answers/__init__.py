"""Candidate answers for tests/test_exercises.py, one module per covered notebook (``nb<notebook stem>.py``).

Each module defines ``EXERCISES = {"Exercise N": spec}``, where ``spec`` holds

* ``"wrong"``: a list of ``{"answer": code, "hint": (key words, ...), "why": text}``: plausible mistakes; the check
  cell must reject each with an ``AssertionError`` whose message holds every key word (case-insensitive);
* ``"right"``: a list of code strings: correct answers written differently from the solution; the check must pass;
* optionally ``"cells"``: pieces of text that pick notebook cells to run as set-up (after the first code cell,
  in notebook order; only cells above the check), and ``"extra"``: code run after them.

An answer is the code that replaces the ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block (indentation is added);
for an exercise with several blocks, a list with one string per block, in notebook order.
"""
