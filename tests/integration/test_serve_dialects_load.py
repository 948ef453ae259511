"""Many clients at one real `genvec serve` (its own process, on 127.0.0.1), every dialect mixed, every answer the
library's: benchmarks/serve_load.py's `check`, scaled down here and at the issue's full size under `slow`."""

import dataclasses
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")
pytest.importorskip("httpx2")

_SPEC = importlib.util.spec_from_file_location("serve_load", Path(__file__).parents[2] / "benchmarks" /
                                               "serve_load.py")
serve_load = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(serve_load)


@pytest.fixture(scope="module")
def library(served_model):
    return serve_load.library_answers(served_model)


@pytest.fixture(scope="module")
def url(served_model, tmp_path_factory):
    checkpoint = tmp_path_factory.mktemp("load") / "model"
    served_model.save_pretrained(checkpoint)
    with serve_load.genvec_serve(checkpoint) as url:
        yield url


def test_eight_clients_get_the_librarys_answers_on_every_route(url, library):
    report = serve_load.check(url, library, clients=8, requests=25)
    assert report.errors == [] and report.mismatches == [], report.figures()
    assert {kind: len(seconds) for kind, seconds in report.latencies.items()} == {kind: 25 for kind in
                                                                                   serve_load.KINDS}


def test_the_check_sees_answers_off_by_twice_its_tolerance(url, library):
    off = 2 * serve_load.TOLERANCE
    shifted = dataclasses.replace(library, vectors={name: v + off for name, v in library.vectors.items()},
                                  rankings=[[(i, score + off) for i, score in r] for r in library.rankings])
    report = serve_load.check(url, shifted, clients=1, requests=len(serve_load.KINDS))
    assert report.errors == []
    assert [line.split("(")[1].split(",")[0] for line in report.mismatches] == list(serve_load.KINDS)


@pytest.mark.slow
def test_sixteen_clients_times_five_hundred_mixed_requests(url, library):
    """The issue's load acceptance: 16 concurrent clients x 500 mixed requests, 0 errors, every answer the
    library's."""
    report = serve_load.check(url, library, clients=16, requests=500)
    assert report.errors == [] and report.mismatches == [], report.figures()
    assert report.requests == 16 * 500
