"""Damaged and hostile model files: refused with the documented errors, never a crash or a hang.

The long run is ``python -m edgebnn.bench.fuzz --mutations 10000 --crafted``.
"""
import os

import pytest

from edgebnn import ModelFileError, ModelFormatError, load_model
from edgebnn.bench.fuzz import crafted_files, fuzz, progress_words


def test_mutations_of_the_shipped_models_are_refused_or_load_only_when_resealed():
    counts, failures = fuzz(200, seed=7, timeout=30.0)
    assert failures == []
    assert sum(counts.values()) == 200
    for kind in ("damaged", "resealed"):
        assert counts[kind, "refused"] > 20
    assert counts["resealed", "loaded"] > 0          # the run reached the reader's checks too
    assert {outcome for _, outcome in counts} <= {"refused", "loaded"}


def test_progress_is_told_in_words_most_common_first():
    from collections import Counter
    counts = Counter({("damaged", "refused"): 3, ("resealed", "loaded"): 5})
    assert progress_words(counts) == "5 resealed loaded, 3 damaged refused"
    assert progress_words(Counter()) == "none yet"


def test_crafted_files_are_refused_at_load(tmp_path):
    files = crafted_files(str(tmp_path))
    assert len(files) == 8
    for name, path in files.items():
        with pytest.raises((ModelFileError, ModelFormatError), match=os.path.basename(path)):
            load_model(path)
