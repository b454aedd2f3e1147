"""A plain progress bar on stderr for long runs: no dependency, silent when asked.

On a terminal the bar redraws in place; in a log (stderr not a terminal)
each step is one line, so a run over ssh or in CI still shows where it is.
"""
import sys


class Progress:
    def __init__(self, total, label, stream=None, enabled=True, width=30):
        self.total, self.label, self.done, self.width = total, label, 0, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.inplace = enabled and self.stream.isatty()

    def step(self, note=""):
        """One unit done; ``note`` says which."""
        self.done += 1
        if not self.enabled:
            return
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        text = f"{self.label} [{bar}] {self.done}/{self.total} {note}"
        if self.inplace:
            self.stream.write("\r" + text.ljust(100)[:100])
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
