"""The report's sections, one module each (see usseg.report for how to add one)."""
