import os

import pytest
import torch

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


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # The models are tiny: one intra-op thread is as fast on 2 cores and much faster when
    # other processes compete for them (OpenMP threads spin-waiting on a busy core).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A teacher cache shared by the tests of one module."""
    return str(tmp_path_factory.mktemp("hpo_kd_cache"))


@pytest.fixture(autouse=True)
def _no_repo_writes(monkeypatch, tmp_path):
    # Anything that falls back to the default cache lands in the test's tmp_path.
    monkeypatch.setenv("HPO_KD_CACHE", str(tmp_path / "default_cache"))


def start_ray():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")


@pytest.fixture(scope="session")
def _ray_session():
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def shared_ray(_ray_session):
    """One embedded Ray per pytest worker, shared by the tests that run studies in it (a Runner
    uses a Ray it finds): a start-up costs seconds, and every Ray test module would pay it. Started
    again if a test stopped it (own_ray)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        start_ray()
    return ray


@pytest.fixture
def own_ray():
    """No Ray running when the test starts (it starts its own) nor after it; the next test that
    asks for shared_ray starts that again."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
    # The slow tests (Ray, subprocesses) first, each module's together: with two workers
    # (pytest-xdist, one test at a time each: `make test`) the short tests then fill the gaps at
    # the end instead of a long one running alone there.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
