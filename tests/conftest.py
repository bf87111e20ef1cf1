import os

import pytest

# Trials write teachers and results under tmp paths; never into the repository.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")


@pytest.fixture
def study_file(tmp_path):
    """Write a study TOML into tmp_path and return its path."""

    def write(text: str, name: str = "s.toml") -> str:
        p = tmp_path / name
        p.write_text(text)
        return str(p)

    return write
