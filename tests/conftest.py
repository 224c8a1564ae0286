import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def short_day(**overrides):
    """Overrides for a short, cheap version of a day scenario (2 h at 60 s)."""
    base = {"duration_h": 2.0}
    base.update(overrides)
    return base


@pytest.fixture
def tmp_yaml(tmp_path):
    def write(text: str, name: str = "scenario.yml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
